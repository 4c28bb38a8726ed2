//! `/`: every project, and the form that creates one.

use api::{NewProject, Project, parse_class_list};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use web_sys::SubmitEvent;

use super::{ClassChip, LoadError, Loading};
use crate::api_client;

/// The project list page.
#[component]
pub fn ProjectList() -> impl IntoView {
    let projects = LocalResource::new(api_client::list_projects);
    let created = RwSignal::new(None::<i64>);
    let on_created = move |project: Project| {
        created.set(Some(project.id));
        projects.refetch();
    };
    view! {
        <section class="page-head">
            <h1>"Projects"</h1>
        </section>
        <div class="projects-layout">
            <NewProjectForm on_created />
            <section class="project-grid" aria-label="Projects">
                {move || match projects.get() {
                    None => view! { <Loading /> }.into_any(),
                    Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
                    Some(Ok(list)) if list.is_empty() => view! {
                        <div class="empty">
                            <h2>"No projects yet"</h2>
                            <p>"Create one with the form: give it a name and the classes you want to detect."</p>
                        </div>
                    }.into_any(),
                    Some(Ok(list)) => list
                        .into_iter()
                        .map(|project| {
                            let fresh = created.get() == Some(project.id);
                            view! { <ProjectCard project fresh /> }
                        })
                        .collect_view()
                        .into_any(),
                }}
            </section>
        </div>
    }
}

#[component]
fn ProjectCard(project: Project, fresh: bool) -> impl IntoView {
    let href = format!("/projects/{}", project.id);
    let class_count = project.classes.len();
    let created = project.created_at.get(..10).unwrap_or_default().to_owned();
    view! {
        <A href attr:class=if fresh { "project-card card fresh" } else { "project-card card" }
            attr:data-project-id=project.id.to_string()>
            <h2 class="project-name">{project.name}</h2>
            <div class="chips">
                {project.classes
                    .into_iter()
                    .map(|class| view! { <ClassChip name=class.name color=class.color /> })
                    .collect_view()}
            </div>
            <p class="muted small">
                {format!("{class_count} class{} · created {created}", if class_count == 1 { "" } else { "es" })}
            </p>
        </A>
    }
}

/// Name + class names; checks locally with the same rules as the server, then creates.
#[component]
fn NewProjectForm(on_created: impl Fn(Project) + Copy + 'static) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let classes_text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let request = NewProject {
            name: name.get_untracked(),
            classes: parse_class_list(&classes_text.get_untracked()),
        };
        if let Err(problem) = request.validate() {
            error.set(Some(problem.to_string()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api_client::create_project(&request).await {
                Ok(project) => {
                    name.set(String::new());
                    classes_text.set(String::new());
                    on_created(project);
                }
                Err(failure) => error.set(Some(failure.message)),
            }
            busy.set(false);
        });
    };

    view! {
        <form class="card new-project" on:submit=submit aria-labelledby="new-project-title" novalidate>
            <h2 id="new-project-title">"New project"</h2>
            <label for="project-name">"Name"</label>
            <input id="project-name" name="name" type="text" placeholder="Street scenes"
                autocomplete="off" bind:value=name />
            <label for="project-classes">"Classes"</label>
            <textarea id="project-classes" name="classes" rows="4" placeholder="car, person, bicycle"
                prop:value=move || classes_text.get()
                on:input=move |ev| classes_text.set(event_target_value(&ev))></textarea>
            <p class="hint">"One per line, or separated by commas. You can add more later."</p>
            {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
            <button type="submit" class="primary" disabled=move || busy.get()>
                {move || if busy.get() { "Creating…" } else { "Create project" }}
            </button>
        </form>
    }
}
