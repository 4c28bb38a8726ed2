//! `/projects/{pid}`: a project's ontology and settings.

use api::{ClassSpec, Project, ProjectPatch, parse_class_list};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::SubmitEvent;

use super::{ClassChip, LoadError, Loading, id_param, project_resource};
use crate::api_client;

/// The project page.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let project_id = id_param("pid");
    let project = project_resource(project_id);
    view! {
        {move || match project.get() {
            None => view! { <Loading /> }.into_any(),
            Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
            Some(Ok(loaded)) => view! { <ProjectDetail project=loaded on_change=move || project.refetch() /> }.into_any(),
        }}
    }
}

#[component]
fn ProjectDetail(project: Project, on_change: impl Fn() + Copy + 'static) -> impl IntoView {
    let split = project.split;
    view! {
        <nav class="crumbs" aria-label="Breadcrumb"><a href="/">"Projects"</a>" / "</nav>
        <section class="page-head">
            <h1 data-project-id=project.id.to_string()>{project.name.clone()}</h1>
        </section>
        <div class="project-layout">
            <section class="card" aria-labelledby="classes-title">
                <h2 id="classes-title">"Classes"</h2>
                <ClassTable project=project.clone() />
                <AddClassesForm project on_change />
            </section>
            <section class="card" aria-labelledby="split-title">
                <h2 id="split-title">"Dataset split"</h2>
                <p>{format!("{}% train · {}% val · {}% test", split.train_pct, split.val_pct, split.test_pct)}</p>
            </section>
        </div>
    }
}

#[component]
fn ClassTable(project: Project) -> impl IntoView {
    if project.classes.is_empty() {
        return view! { <p class="muted">"No classes yet: add the objects you want to detect."</p> }.into_any();
    }
    view! {
        <table class="classes">
            <thead><tr><th>"Key"</th><th>"Class"</th><th>"Id"</th><th>"Teacher prompt"</th></tr></thead>
            <tbody>
                {project.classes.into_iter().enumerate().map(|(index, class)| view! {
                    <tr data-class-id=class.id.to_string()>
                        <td class="muted">{if index < 9 { (index + 1).to_string() } else { String::new() }}</td>
                        <td><ClassChip name=class.name color=class.color /></td>
                        <td class="muted">{class.id}</td>
                        <td class="muted">{class.prompt.unwrap_or_default()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Appends classes to the ontology (existing ones keep their ids).
#[component]
fn AddClassesForm(project: Project, on_change: impl Fn() + Copy + 'static) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let existing = StoredValue::new(project.classes);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let added = parse_class_list(&text.get_untracked());
        if added.is_empty() {
            return;
        }
        let mut classes: Vec<ClassSpec> = existing
            .get_value()
            .into_iter()
            .map(|c| ClassSpec {
                id: Some(c.id),
                name: c.name,
                prompt: c.prompt,
                color: Some(c.color),
            })
            .collect();
        classes.extend(added);
        if let Err(problem) = api::validate_classes(&classes) {
            error.set(Some(problem.to_string()));
            return;
        }
        let patch = ProjectPatch {
            classes: Some(classes),
            ..ProjectPatch::default()
        };
        spawn_local(async move {
            match api_client::update_project(project.id, &patch).await {
                Ok(_) => on_change(),
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    view! {
        <form class="inline-form" on:submit=submit>
            <label for="add-classes" class="visually-hidden">"Add classes"</label>
            <input id="add-classes" type="text" placeholder="Add classes: truck, bus" autocomplete="off" bind:value=text />
            <button type="submit">"Add"</button>
        </form>
        {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
    }
}
