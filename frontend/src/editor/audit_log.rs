//! The editor's "History" panel: the image's audit log (who changed which box how, review
//! decisions and their comments), newest first. It loads when opened and again whenever the
//! live channel reports a change on this image, so it never shows a stale story.

use api::{AuditEntry, ObjectClass};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api_client;

/// The panel. `changes` ticks with every live change on this image.
#[component]
pub fn AuditLog(image_id: i64, classes: StoredValue<Vec<ObjectClass>>, changes: ReadSignal<u64>) -> impl IntoView {
    let open = RwSignal::new(false);
    let entries = RwSignal::new(Vec::<AuditEntry>::new());
    let older = RwSignal::new(None::<i64>);
    let failure = RwSignal::new(None::<String>);
    let load = move |before: Option<i64>| {
        spawn_local(async move {
            match api_client::image_history(image_id, before).await {
                Ok(page) => {
                    failure.set(None);
                    older.set(page.older);
                    if before.is_some() {
                        entries.update(|list| list.extend(page.entries));
                    } else {
                        entries.set(page.entries);
                    }
                }
                Err(error) => failure.set(Some(error.message)),
            }
        });
    };
    Effect::new(move |_| {
        changes.track();
        if open.get() {
            load(None);
        }
    });
    let class_name = move |id: u32| super::class_name(classes, id);
    view! {
        <section class="audit-log" aria-label="History">
            <h2>
                <button class="link audit-toggle" aria-expanded=move || open.get().to_string()
                    on:click=move |_| open.update(|o| *o = !*o)>
                    {move || if open.get() { "History ▾" } else { "History ▸" }}
                </button>
            </h2>
            <Show when=move || open.get()>
            {move || failure.get().map(|message| view! { <p class="error small" role="alert">{message}</p> })}
            <ol class="audit-entries small">
                {move || entries.get().into_iter().map(|entry| {
                    let who = entry.author.clone().unwrap_or_else(|| "An import or model".into());
                    let when = entry.at.get(11..19).unwrap_or(&entry.at).to_owned();
                    view! {
                        <li data-seq=entry.seq.to_string()>
                            <time datetime=entry.at.clone() title=entry.at.clone()>{when}</time>" "
                            <strong>{who}</strong>" "{entry.change.describe(class_name)}
                        </li>
                    }
                }).collect_view()}
            </ol>
            {move || (entries.with(Vec::is_empty) && failure.get().is_none())
                .then(|| view! { <p class="muted small">"No changes recorded yet."</p> })}
            {move || older.get().map(|before| view! {
                <button class="small" on:click=move |_| load(Some(before))>"Show older"</button>
            })}
            </Show>
        </section>
    }
}
