//! `/projects/{pid}/models`: the model registry — upload ONNX detectors (teacher or student), see
//! what the server found in them, and map their classes onto the project's.

use api::{ModelPatch, ModelRole, Project, RegisteredModel, Role};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use super::training::TrainStudent;
use super::{LoadError, Loading, id_param, plural};
use crate::api_client::{self, ApiFailure};

/// The models route.
#[component]
pub fn ModelsPage() -> impl IntoView {
    let project_id = id_param("pid");
    let version = RwSignal::new(0u32);
    let data = LocalResource::new(move || {
        version.track();
        async move {
            let project_id = project_id().ok_or_else(|| ApiFailure {
                code: "not_found".into(),
                message: "This address does not name a project.".into(),
            })?;
            let project = api_client::get_project(project_id).await?;
            let models = api_client::list_models(project_id).await?;
            Ok::<_, ApiFailure>((project, models))
        }
    });
    let outcome = RwSignal::new(None::<Result<String, String>>);
    // Someone else's rollback, upload or training: the cards follow the project's active student.
    // The stream opens with the state as it is; an announcement is checked against the list once
    // that has loaded, so one arriving mid-load does not load (and redraw) the page twice.
    let announced = RwSignal::new(None::<Option<i64>>);
    if let Some(project_id) = project_id() {
        api_client::follow_project_while_mounted(project_id, move |event| match event {
            api::ProjectEvent::ActiveStudent { model } => {
                announced.try_set(Some(model.map(|m| m.id)));
            }
        });
    }
    Effect::new(move |_| {
        let Some(active) = announced.get() else { return };
        let shown = data.with(|d| match d {
            Some(Ok((_, models))) => Some(models.iter().find(|m| m.active).map(|m| m.id)),
            _ => None,
        });
        if let Some(shown) = shown {
            announced.set(None);
            if shown != active {
                version.update(|v| *v += 1);
            }
        }
    });
    view! {
        {move || match data.get() {
            None => view! { <Loading /> }.into_any(),
            Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
            Some(Ok((project, models))) => {
                // Models and trainings are the owners' to change; the others see them.
                let owner = project.role.is_none_or(|role| role.allows(Role::Owner));
                view! {
                <nav class="crumbs" aria-label="Breadcrumb">
                    <a href="/">"Projects"</a>" / "<a href=format!("/projects/{}", project.id)>{project.name.clone()}</a>" / "
                </nav>
                <section class="page-head"><h1>"Models"</h1>
                    <a class="small" href=format!("/projects/{}/quality", project.id)>"Quality of each model"</a></section>
                {if owner {
                    view! {
                        <ModelUpload project_id=project.id outcome on_added=move || version.update(|v| *v += 1) />
                        <TrainStudent project_id=project.id
                            students=models.iter().filter(|m| m.role == ModelRole::Student).cloned().collect()
                            on_published=move || version.update(|v| *v += 1) />
                    }.into_any()
                } else {
                    view! { <p class="muted role-note">"Only the project's owners add models and start trainings."</p> }.into_any()
                }}
                {models.is_empty().then(|| view! { <p class="muted">"No models yet."</p> })}
                {models.into_iter().map(|model| view! {
                    <ModelCard model project=project.clone() owner on_activated=move || version.update(|v| *v += 1) />
                }).collect_view()}
            }.into_any()
            }
        }}
    }
}

#[component]
fn ModelUpload(
    project_id: i64,
    outcome: RwSignal<Option<Result<String, String>>>,
    on_added: impl Fn() + Copy + 'static,
) -> impl IntoView {
    let role = RwSignal::new(ModelRole::Student);
    let busy = RwSignal::new(false);
    let pick = move |ev: leptos::ev::Event| {
        let input: Option<web_sys::HtmlInputElement> = ev.target().and_then(|t| t.dyn_into().ok());
        let Some(file) = input.as_ref().and_then(|i| i.files()).and_then(|f| f.get(0)) else {
            return;
        };
        if let Some(input) = input {
            input.set_value("");
        }
        busy.set(true);
        outcome.set(None);
        spawn_local(async move {
            let result = api_client::upload_model(project_id, &file, role.get_untracked()).await;
            busy.set(false);
            match result {
                Ok(model) => {
                    outcome.set(Some(Ok(format!(
                        "Added {} ({}, {}).",
                        model.file_name,
                        model.role.as_str(),
                        model.layout
                    ))));
                    on_added();
                }
                Err(failure) => outcome.set(Some(Err(failure.message))),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="add-model-title">
            <h2 id="add-model-title">"Add a model"</h2>
            <p class="muted small">"An ONNX detector exported by Ultralytics (YOLOv5/8/11, or end-to-end). A new student becomes the one every browser runs for pre-labels, open editors included; an earlier version can be made active again from its card."</p>
            <label for="model-role">"Role"</label>
            <select id="model-role" on:change=move |ev| {
                if let Some(r) = ModelRole::parse(&event_target_value(&ev)) { role.set(r) }
            }>
                <option value="student" selected>"Student (runs in the browser)"</option>
                <option value="teacher">"Teacher (auto-labels on the server: distillery teacher, or a teacher job)"</option>
            </select>
            <label class="button" class:disabled=move || busy.get()>
                {move || if busy.get() { "Checking the model…" } else { "Choose an ONNX file…" }}
                <input id="model-file" type="file" accept=".onnx" class="visually-hidden" on:change=pick disabled=move || busy.get() />
            </label>
            {move || outcome.get().map(|o| match o {
                Ok(message) => view! { <p class="ok small" role="status">{message}</p> }.into_any(),
                Err(message) => view! { <p class="form-error" role="alert">{message}</p> }.into_any(),
            })}
        </section>
    }
}

/// One model: what it is, its class mapping (editable), and for an inactive student the way
/// back to it (rolling back is one click).
#[component]
fn ModelCard(
    model: RegisteredModel,
    project: Project,
    /// Whether the viewer may run, activate and remap it.
    owner: bool,
    on_activated: impl Fn() + Copy + 'static,
) -> impl IntoView {
    let class_map = RwSignal::new(model.class_map.clone());
    let saved = RwSignal::new(None::<Result<(), String>>);
    let model_id = model.id;
    let save = move || {
        let patch = ModelPatch {
            class_map: class_map.get_untracked(),
        };
        spawn_local(async move {
            let result = api_client::update_model(model_id, &patch).await;
            saved.set(Some(result.map(drop).map_err(|f| f.message)));
        });
    };
    let activation = RwSignal::new(None::<String>);
    let project_id = project.id;
    let activate = move |_| {
        activation.set(None);
        spawn_local(async move {
            match api_client::set_active_student(project_id, model_id).await {
                Ok(_) => on_activated(),
                Err(failure) => activation.set(Some(failure.message)),
            }
        });
    };
    let mapped = move || class_map.with(|m| m.iter().flatten().count());
    let names = model.class_names.clone();
    view! {
        <section class="card model-card" data-model-id=model.id.to_string() data-active=model.active.to_string()>
            <h2>{format!("{} v{} · {}", if model.role == ModelRole::Student { "Student" } else { "Teacher" }, model.version, model.file_name)}
                <span class="badge">{model.role.as_str()}</span>
                {model.active.then(|| view! { <span class="badge status-approved">"active"</span> })}
            </h2>
            <p class="small">{format!("Input {0}×{0} · {1} · {2} · {3:.1} MB", model.input_size, model.layout,
                plural(model.class_names.len() as u64, "class"), model.byte_size as f64 / 1e6)}</p>
            <p class="small muted">{format!("Version {}…", &model.sha256[..12.min(model.sha256.len())])}</p>
            {model.trained.clone().map(|t| view! {
                <p class="small trained-by">{format!("Trained here (job {}): val mAP50 {}, mAP50-95 {}", t.job_id,
                    t.map50.map_or("—".into(), |m| format!("{m:.3}")), t.map50_95.map_or("—".into(), |m| format!("{m:.3}")))}</p>
            })}
            {(owner && model.role == ModelRole::Teacher).then(|| view! { <TeacherRun project_id=project.id model_id=model.id /> })}
            {(owner && model.role == ModelRole::Student && !model.active).then(|| view! {
                <p class="small">
                    <button class="make-active" on:click=activate
                        title="Every open editor switches to this version at once">"Pre-label with this version"</button>
                </p>
            })}
            {move || activation.get().map(|m| view! { <p class="form-error small" role="alert">{m}</p> })}
            <details>
                <summary>{move || format!("Class mapping: {} of {} mapped; unmapped classes are ignored", mapped(), names.len())}</summary>
                <table class="class-map">
                    <thead><tr><th>"Model class"</th><th>"Project class"</th></tr></thead>
                    <tbody>
                        {model.class_names.iter().enumerate().map(|(index, name)| {
                            let options = project.classes.clone();
                            view! {
                                <tr>
                                    <td>{name.clone()}</td>
                                    <td>
                                        <select data-model-class=index.to_string() disabled=!owner on:change=move |ev| {
                                            let value = event_target_value(&ev);
                                            class_map.update(|m| if let Some(slot) = m.get_mut(index) { *slot = value.parse().ok() });
                                            save();
                                        }>
                                            <option value="" selected=move || class_map.with(|m| m.get(index).copied().flatten().is_none())>"— ignored —"</option>
                                            {options.into_iter().map(|c| {
                                                let id = c.id;
                                                view! { <option value=id.to_string() selected=move || class_map.with(|m| m.get(index).copied().flatten() == Some(id))>{c.name}</option> }
                                            }).collect_view()}
                                        </select>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </details>
            {move || saved.get().map(|r| match r {
                Ok(()) => view! { <p class="ok small" role="status">"Mapping saved."</p> }.into_any(),
                Err(message) => view! { <p class="form-error small" role="alert">{message}</p> }.into_any(),
            })}
        </section>
    }
}

/// "Label images with this teacher": a teacher job over every image of the project, its
/// progress pushed by the server (images/s, time left) until it ends.
#[component]
fn TeacherRun(project_id: i64, model_id: i64) -> impl IntoView {
    let job = RwSignal::new(None::<api::Job>);
    let failure = RwSignal::new(None::<String>);
    let running = move || job.with(|j| j.as_ref().is_some_and(|j| !j.state.is_final()));
    let start = move |_| {
        failure.set(None);
        spawn_local(async move {
            let new_job = api::NewJob {
                kind: api::JobKind::Teacher,
                model_id: Some(model_id),
                images: None,
                min_conf: None,
                train: None,
                gpu: false,
            };
            match api_client::create_job(project_id, &new_job).await {
                Ok(created) => {
                    job.set(Some(created.clone()));
                    match api_client::follow_job(created.id, move |fresh| job.set(Some(fresh))).await {
                        Ok(finished) => job.set(Some(finished)),
                        Err(error) => failure.set(Some(error.message)),
                    }
                }
                Err(error) => failure.set(Some(error.message)),
            }
        });
    };
    view! {
        <p class="small">
            <button class="run-teacher" on:click=start disabled=running>"Label every image with this teacher"</button>
        </p>
        {move || job.get().map(|j| view! {
            <p class="small job" data-job-state=j.state.as_str()>
                {format!("Teacher: {} · {} / {}", j.state.as_str(), j.done, j.total)}
                {j.message.clone().map(|m| format!(" — {m}"))}
                {j.worker.clone().map(|w| format!(" · on {w}"))}
            </p>
        })}
        {move || failure.get().map(|m| view! { <p class="form-error small" role="alert">{m}</p> })}
    }
}
