//! The pre-label panel's engine: which executor ran the student on this image (GPU or CPU, and
//! why not the GPU when it was allowed), and the choice of where it runs.

use api::worker::{Engine, EngineChoice, EngineKind};
use leptos::prelude::*;

use crate::prelabel;

/// " on WebGPU (…)" / " on CPU (…)", inline after the time, and why the GPU did not run the
/// student when the choice allowed it.
#[component]
pub(super) fn EngineUsed(engine: Engine, choice: EngineChoice) -> impl IntoView {
    let kind = match engine.kind {
        EngineKind::Webgpu => "webgpu",
        EngineKind::Cpu => "cpu",
    };
    // Auto picking the CPU over a software adapter is the plan working, not news (the title
    // says it); a person who chose the GPU is told why they did not get it.
    let why = engine.not_on_gpu.clone().filter(|_| choice == EngineChoice::Gpu);
    view! {
        <span class="muted prelabel-engine" data-engine=kind title=engine.not_on_gpu.unwrap_or_default()>
            " on "{engine.name}
            {why.map(|why| view! { <span class="not-on-gpu">{format!(", not on the GPU: {why}")}</span> })}
        </span>
    }
}

/// The "Run on" select; remembers the choice for this browser.
#[component]
pub(super) fn EnginePicker(engine: RwSignal<EngineChoice>) -> impl IntoView {
    let has_webgpu = browser_has_webgpu();
    view! {
        <label for="prelabel-engine" class="small">"Run on"</label>
        <select id="prelabel-engine" on:change=move |ev| {
            if let Some(choice) = EngineChoice::parse(&event_target_value(&ev)) {
                prelabel::remember_engine(choice);
                engine.set(choice);
            }
        }>
            {EngineChoice::ALL.into_iter().map(|choice| {
                let (label, title) = match choice {
                    EngineChoice::Auto => ("Auto", "The GPU when this browser has a hardware one, else the CPU"),
                    EngineChoice::Gpu if has_webgpu => ("GPU (WebGPU)", "The GPU, a software adapter too"),
                    EngineChoice::Gpu => ("GPU (WebGPU)", "This browser has no WebGPU"),
                    EngineChoice::Cpu => ("CPU", "The CPU (WebAssembly)"),
                };
                let unavailable = choice == EngineChoice::Gpu && !has_webgpu;
                view! {
                    <option value=choice.as_str() selected=move || engine.get() == choice disabled=unavailable
                        title=title>{label}</option>
                }
            }).collect_view()}
        </select>
    }
}

/// Whether `navigator.gpu` exists in this page (the worker asks it for an adapter).
fn browser_has_webgpu() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|navigator| js_sys::Reflect::has(&navigator, &"gpu".into()))
        .unwrap_or(false)
}
