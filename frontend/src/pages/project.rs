//! `/projects/{pid}`: a project's ontology and settings.

use api::{ImageInfo, ImageStatus, Project, Role};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use web_sys::{File, FileList};

use crate::upload::{UploadItem, UploadState, upload_file};

use super::ontology::{ClassEditor, RenameProject, SplitEditor};
use super::{LoadError, Loading, id_param, plural, project_resource};
use crate::api_client;

/// The project page.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let project_id = id_param("pid");
    let project = project_resource(project_id);
    // Lives above the part re-rendered when the project reloads, so the report stays visible.
    let import_outcome = RwSignal::new(None::<Result<api::ImportReport, String>>);
    view! {
        {move || match project.get() {
            None => view! { <Loading /> }.into_any(),
            Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
            Some(Ok(loaded)) => view! {
                <ProjectDetail project=loaded on_change=move || project.refetch() import_outcome />
            }.into_any(),
        }}
    }
}

#[component]
fn ProjectDetail(
    project: Project,
    on_change: impl Fn() + Copy + 'static,
    import_outcome: RwSignal<Option<Result<api::ImportReport, String>>>,
) -> impl IntoView {
    // Owners change the project; everyone else sees it (the server refuses the rest anyway).
    let owner = project.role.is_none_or(|role| role.allows(Role::Owner));
    // Bumped after uploads and imports so the gallery reloads.
    let gallery_version = RwSignal::new(0u32);
    let refresh_gallery = move || gallery_version.update(|v| *v += 1);
    // The active student, loaded in the model worker while the person chooses an image.
    let student_ready = RwSignal::new(None::<i64>);
    let project_id = project.id;
    spawn_local(async move {
        let Some(model) = crate::prelabel::active_student(project_id).await else {
            return;
        };
        match crate::prelabel::prepare(&model).await {
            Ok(()) => {
                student_ready.try_set(Some(model.id));
            }
            // The editor says why when it asks again.
            Err(message) => leptos::logging::warn!("the student could not be readied: {message}"),
        }
    });
    view! {
        <nav class="crumbs" aria-label="Breadcrumb"><a href="/">"Projects"</a>" / "</nav>
        <section class="page-head" data-student-ready=move || student_ready.get().map(|id| id.to_string())>
            <h1 data-project-id=project.id.to_string()>{project.name.clone()}</h1>
            <nav class="page-links small">
                <a href=format!("/projects/{}/models", project.id)>"Models"</a>
                <a href=format!("/projects/{}/quality", project.id) id="quality-link">"Quality"</a>
            </nav>
        </section>
        <div class="project-layout">
            <div class="project-main">
                {owner.then(|| view! { <UploadPanel project_id=project.id on_uploaded=refresh_gallery /> })}
                <Gallery project=project.clone() version=gallery_version />
                <section class="card" aria-labelledby="classes-title">
                    <h2 id="classes-title">"Classes"</h2>
                    {if owner {
                        view! { <ClassEditor project=project.clone() /> }.into_any()
                    } else {
                        view! {
                            <div class="chips">
                                {project.classes.iter().map(|c| view! { <super::ClassChip name=c.name.clone() color=c.color.clone() /> }).collect_view()}
                            </div>
                        }.into_any()
                    }}
                </section>
            </div>
            <div class="project-side">
                {project.role.map(|role| view! {
                    <p class="role-note muted small" data-role=role.as_str()>{format!("Your role here: {role}")}</p>
                })}
                <super::work::WorkPanel project_id=project.id role=project.role />
                <super::queue::QueuePanel project_id=project.id />
                <ExportPanel project_id=project.id />
                {owner.then(|| view! {
                    <ImportPanel project_id=project.id outcome=import_outcome on_imported=move || { refresh_gallery(); on_change(); } />
                    <section class="card" aria-labelledby="split-title">
                        <h2 id="split-title">"Dataset split"</h2>
                        <SplitEditor project=project.clone() />
                    </section>
                })}
                <super::members::MembersPanel project_id=project.id />
                {owner.then(|| view! {
                    <section class="card" aria-labelledby="settings-title">
                        <h2 id="settings-title">"Project"</h2>
                        <RenameProject project=project.clone() on_saved=on_change />
                    </section>
                })}
            </div>
        </div>
    }
}

/// Imports a YOLO or COCO zip into the project and shows what it did or every problem found.
#[component]
fn ImportPanel(
    project_id: i64,
    outcome: RwSignal<Option<Result<api::ImportReport, String>>>,
    on_imported: impl Fn() + Copy + 'static,
) -> impl IntoView {
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
            let result = api_client::import_dataset(project_id, &file).await;
            busy.set(false);
            let imported = result.is_ok();
            outcome.set(Some(result.map_err(|f| f.message)));
            if imported {
                on_imported();
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="import-title">
            <h2 id="import-title">"Import"</h2>
            <p class="muted small">"A zip in the Ultralytics YOLO layout (data.yaml or classes.txt) or COCO JSON with its images."</p>
            <label class="file-pick button-like">
                {move || if busy.get() { "Importing…" } else { "Choose a zip…" }}
                <input id="import-input" type="file" accept=".zip,application/zip" on:change=pick disabled=move || busy.get() />
            </label>
            {move || outcome.get().map(|result| match result {
                Ok(r) => view! {
                    <p class="ok small import-report">{format!(
                        "Imported {} ({}): {} added, {} boxes, {} duplicates skipped{}",
                        plural(r.images_added + r.duplicates, "image"), r.format, r.images_added, r.boxes_added, r.duplicates,
                        if r.classes_created.is_empty() { String::new() } else { format!(", new classes: {}", r.classes_created.join(", ")) }
                    )}</p>
                }.into_any(),
                Err(message) => view! { <pre class="form-error small import-problems" role="alert">{message}</pre> }.into_any(),
            })}
        </section>
    }
}

/// Drag-and-drop (or pick) images; each file shows its own progress or the reason it was refused.
#[component]
fn UploadPanel(project_id: i64, on_uploaded: impl Fn() + Copy + 'static) -> impl IntoView {
    let items = RwSignal::new(Vec::<UploadItem>::new());
    let next_id = StoredValue::new(0u64);
    let dragging = RwSignal::new(false);
    let start = move |files: Vec<File>| {
        if files.is_empty() {
            return;
        }
        let batch: Vec<(File, UploadItem)> = files
            .into_iter()
            .map(|file| {
                next_id.update_value(|id| *id += 1);
                let item = UploadItem {
                    id: next_id.get_value(),
                    name: file.name(),
                    state: RwSignal::new(UploadState::Queued),
                };
                (file, item)
            })
            .collect();
        items.update(|list| list.extend(batch.iter().map(|(_, item)| item.clone())));
        spawn_local(async move {
            for (file, item) in batch {
                upload_file(project_id, file, item.state).await;
            }
            on_uploaded();
        });
    };
    let files_of = |list: Option<FileList>| -> Vec<File> {
        let Some(list) = list else { return Vec::new() };
        (0..list.length()).filter_map(|i| list.get(i)).collect()
    };
    view! {
        <section class="card upload" aria-labelledby="upload-title">
            <h2 id="upload-title">"Add images"</h2>
            <div class="dropzone" class:dragging=move || dragging.get()
                on:dragover=move |ev: web_sys::DragEvent| { ev.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |ev: web_sys::DragEvent| {
                    ev.prevent_default();
                    dragging.set(false);
                    start(files_of(ev.data_transfer().and_then(|d| d.files())));
                }>
                <p>"Drop JPEG, PNG, WebP or BMP images here, or "
                    <label class="file-pick">"choose files"
                        <input id="upload-input" type="file" multiple accept="image/jpeg,image/png,image/webp,image/bmp"
                            on:change=move |ev| {
                                let input: Option<web_sys::HtmlInputElement> = ev.target().and_then(|t| t.dyn_into().ok());
                                if let Some(input) = input {
                                    start(files_of(input.files()));
                                    input.set_value("");
                                }
                            } />
                    </label>
                </p>
            </div>
            <ul class="upload-list">
                <For each=move || items.get() key=|item| item.id let:item>
                    <li class="upload-item" data-state=move || match item.state.get() {
                        UploadState::Queued => "queued",
                        UploadState::Sending(_) => "sending",
                        UploadState::Done(_) => "done",
                        UploadState::Failed(_) => "failed",
                    }>
                        <span class="upload-name">{item.name.clone()}</span>
                        {move || match item.state.get() {
                            UploadState::Queued => view! { <span class="muted small">"waiting"</span> }.into_any(),
                            UploadState::Sending(fraction) => view! {
                                <progress max="1" value=fraction.to_string()></progress>
                            }.into_any(),
                            UploadState::Done(file) if file.duplicate => view! { <span class="muted small">"already in the project"</span> }.into_any(),
                            UploadState::Done(file) => view! { <span class="ok small">{format!("✓ {} × {}", file.width, file.height)}</span> }.into_any(),
                            UploadState::Failed(message) => view! { <span class="form-error small" role="alert">{message}</span> }.into_any(),
                        }}
                    </li>
                </For>
            </ul>
        </section>
    }
}

const GALLERY_PAGE: u32 = 120;

/// Thumbnails, filterable by status, class and where their labels came from, a page at a time (stays light with 10 000 images).
#[component]
fn Gallery(project: Project, version: RwSignal<u32>) -> impl IntoView {
    let project_id = project.id;
    let status_filter = RwSignal::new(None::<ImageStatus>);
    let class_filter = RwSignal::new(None::<u32>);
    let source_filter = RwSignal::new(None::<api::BoxSource>);
    let images = RwSignal::new(Vec::<ImageInfo>::new());
    let next_cursor = RwSignal::new(None::<i64>);
    let total = RwSignal::new(0u64);
    let error = RwSignal::new(None::<String>);
    // Answers to superseded filter changes are ignored.
    let generation = StoredValue::new(0u32);

    let fetch = move |cursor: Option<i64>| {
        let (status, class_id, source) = (
            status_filter.get_untracked(),
            class_filter.get_untracked(),
            source_filter.get_untracked(),
        );
        if cursor.is_none() {
            generation.update_value(|g| *g += 1);
        }
        let asked = generation.get_value();
        spawn_local(async move {
            let page = api_client::list_images(project_id, status, class_id, source, cursor, None, GALLERY_PAGE).await;
            if generation.get_value() != asked {
                return;
            }
            match page {
                Ok(page) => {
                    if cursor.is_some() {
                        images.update(|list| list.extend(page.images));
                    } else {
                        images.set(page.images);
                    }
                    next_cursor.set(page.next_cursor);
                    total.set(page.total);
                    error.set(None);
                }
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    Effect::new(move |_| {
        status_filter.track();
        class_filter.track();
        source_filter.track();
        version.track();
        fetch(None);
    });

    let class_options = project.classes.clone();
    view! {
        <section class="card gallery" aria-labelledby="gallery-title">
            <div class="gallery-head">
                <h2 id="gallery-title">"Images"</h2>
                <span class="muted small" data-total=move || total.get().to_string()>{move || format!("{} shown of {}", images.with(Vec::len), total.get())}</span>
                <span class="spacer"></span>
                <label class="visually-hidden" for="status-filter">"Status"</label>
                <select id="status-filter" on:change=move |ev| status_filter.set(ImageStatus::parse(&event_target_value(&ev)))>
                    <option value="">"All statuses"</option>
                    {ImageStatus::ALL.into_iter().map(|s| view! { <option value=s.as_str()>{s.label()}</option> }).collect_view()}
                </select>
                <label class="visually-hidden" for="class-filter">"Class"</label>
                <select id="class-filter" on:change=move |ev| class_filter.set(event_target_value(&ev).parse().ok())>
                    <option value="">"All classes"</option>
                    {class_options.into_iter().map(|c| view! { <option value=c.id.to_string()>{c.name}</option> }).collect_view()}
                </select>
                <label class="visually-hidden" for="source-filter">"Labels from"</label>
                <select id="source-filter" on:change=move |ev| source_filter.set(api::BoxSource::parse(&event_target_value(&ev)))>
                    <option value="">"Any labels"</option>
                    <option value="human">"Has human labels"</option>
                    <option value="teacher">"Has teacher labels"</option>
                </select>
            </div>
            {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
            {move || (images.with(Vec::is_empty) && error.get().is_none()).then(|| view! {
                <p class="muted">"No images here yet."</p>
            })}
            <div class="thumbs">
                <For each=move || images.get() key=|image| (image.id, image.status, image.box_count) let:image>
                    <a class="thumb" href=format!("/projects/{project_id}/images/{}", image.id)
                        data-image-id=image.id.to_string() title=image.file_name.clone()>
                        <img src=format!("/api/images/{}/thumb", image.id) alt=image.file_name.clone() loading="lazy" />
                        <span class=format!("badge status-{}", image.status.as_str())>{image.status.label()}</span>
                        <span class="thumb-count">{if image.negative { "no objects".to_owned() } else { plural(u64::from(image.box_count), "box") }}</span>
                    </a>
                </For>
            </div>
            {move || next_cursor.get().map(|cursor| view! {
                <button class="load-more" on:click=move |_| fetch(Some(cursor))>"Load more"</button>
            })}
        </section>
    }
}

/// Checks what an export would contain, then downloads it.
#[component]
fn ExportPanel(project_id: i64) -> impl IntoView {
    let format = RwSignal::new("yolo".to_owned());
    let include = RwSignal::new("labeled".to_owned());
    let summary = RwSignal::new(None::<Result<api::ExportCounts, String>>);
    let download = move |_| {
        let query = format!("format={}&include={}", format.get_untracked(), include.get_untracked());
        spawn_local(async move {
            match api_client::export_counts(project_id, &query).await {
                Ok(counts) => {
                    summary.set(Some(Ok(counts)));
                    // An attachment: the browser downloads it and stays on this page.
                    if let Some(window) = web_sys::window() {
                        let _ = window
                            .location()
                            .set_href(&format!("/api/projects/{project_id}/export?{query}"));
                    }
                }
                Err(failure) => summary.set(Some(Err(failure.message))),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="export-title">
            <h2 id="export-title">"Export"</h2>
            <div class="export-form">
                <select id="export-format" on:change=move |ev| format.set(event_target_value(&ev))>
                    <option value="yolo">"YOLO (Ultralytics)"</option>
                    <option value="coco">"COCO JSON"</option>
                </select>
                <select id="export-include" on:change=move |ev| include.set(event_target_value(&ev))>
                    <option value="labeled">"Labeled images"</option>
                    <option value="approved">"Approved only"</option>
                    <option value="auto" title="Adds images a teacher auto-labeled, with its boxes above the confidence threshold; empty until a teacher has labeled images">"Labeled + teacher auto-labels"</option>
                </select>
                <button id="export-button" class="primary" on:click=download>"Download zip"</button>
            </div>
            {move || summary.get().map(|result| match result {
                Ok(c) => view! { <p class="small export-summary">{format!(
                    "{} · {} (train {}, val {}, test {})",
                    plural(c.images, "image"), plural(c.boxes, "box"), c.train, c.val, c.test
                )}</p> }.into_any(),
                Err(message) => view! { <p class="form-error small" role="alert">{message}</p> }.into_any(),
            })}
        </section>
    }
}
