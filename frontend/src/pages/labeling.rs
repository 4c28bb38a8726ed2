//! `/projects/{pid}/images/{iid}`: the labeling view. It loads the project's ontology for the
//! class palette (number keys pick a class); the image and its boxes come from `/api/images`.

use api::Project;
use leptos::prelude::*;

use super::{ClassChip, LoadError, Loading, id_param, project_resource};

/// The labeling view.
#[component]
pub fn LabelingView() -> impl IntoView {
    let project_id = id_param("pid");
    let image_id = id_param("iid");
    let project = project_resource(project_id);
    view! {
        {move || match project.get() {
            None => view! { <Loading /> }.into_any(),
            Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
            Some(Ok(loaded)) => view! { <LabelingShell project=loaded image_id=image_id() /> }.into_any(),
        }}
    }
}

#[component]
fn LabelingShell(project: Project, image_id: Option<i64>) -> impl IntoView {
    let back = format!("/projects/{}", project.id);
    view! {
        <div class="labeling">
            <aside class="palette card" aria-label="Classes">
                <a href=back class="small">{format!("← {}", project.name)}</a>
                <h2>"Classes"</h2>
                <ol class="palette-list">
                    {project.classes.into_iter().enumerate().map(|(index, class)| view! {
                        <li data-class-id=class.id.to_string()>
                            <kbd>{if index < 9 { (index + 1).to_string() } else { String::new() }}</kbd>
                            <ClassChip name=class.name color=class.color />
                        </li>
                    }).collect_view()}
                </ol>
            </aside>
            <section class="stage card" aria-label="Image">
                {match image_id {
                    Some(id) => view! { <StageImage image_id=id /> }.into_any(),
                    None => view! { <p class="muted">"This address does not name an image."</p> }.into_any(),
                }}
            </section>
        </div>
    }
}

/// The image as stored (its original bytes); says so plainly when it cannot be loaded.
#[component]
fn StageImage(image_id: i64) -> impl IntoView {
    let failed = RwSignal::new(false);
    view! {
        <img class="stage-image" src=format!("/api/images/{image_id}/file") alt=format!("Image {image_id}")
            class:hidden=move || failed.get() on:error=move |_| failed.set(true) />
        <Show when=move || failed.get()>
            <p class="form-error" role="alert">{format!("Image {image_id} could not be loaded.")}</p>
        </Show>
    }
}
