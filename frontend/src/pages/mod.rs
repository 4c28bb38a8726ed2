//! One module per app route.

mod account;
pub mod invite;
mod members;
mod models;
mod not_found;
mod ontology;
mod project;
mod projects;
mod quality;
pub mod queue;
mod training;
mod users;
pub mod work;

pub use account::AccountPage;
pub use models::ModelsPage;
pub use not_found::NotFound;
pub use project::ProjectPage;
pub use projects::ProjectList;
pub use quality::QualityPage;
pub use users::UsersPage;

use leptos::prelude::*;

use api::Project;

use crate::api_client::{self, ApiFailure};

/// Shown while a page's data loads.
#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="muted" aria-busy="true">"Loading…"</p> }
}

/// Shown when a page's data could not be loaded.
#[component]
pub fn LoadError(failure: ApiFailure) -> impl IntoView {
    view! {
        <div class="card error-card" role="alert">
            <h2>"Could not load this page"</h2>
            <p>{failure.message}</p>
            <a href="/">"Back to projects"</a>
        </div>
    }
}

/// Coloured dot + name of a class.
#[component]
fn ClassChip(name: String, color: String) -> impl IntoView {
    view! {
        <span class="chip">
            <span class="swatch" style:background-color=color></span>
            {name}
        </span>
    }
}

/// The `:pid`-style route parameter `key` as a number, if it is one.
pub fn id_param(key: &'static str) -> impl Fn() -> Option<i64> + Copy {
    let params = leptos_router::hooks::use_params_map();
    move || params.read().get(key).and_then(|value| value.parse().ok())
}

/// The project named by the route, reloaded when the route changes.
fn project_resource(
    project_id: impl Fn() -> Option<i64> + Copy + 'static,
) -> LocalResource<Result<Project, ApiFailure>> {
    LocalResource::new(move || {
        let id = project_id();
        async move {
            match id {
                Some(id) => api_client::get_project(id).await,
                None => Err(ApiFailure {
                    code: "not_found".into(),
                    message: "This address does not name a project.".into(),
                }),
            }
        }
    })
}

/// "1 image", "2 images", "1 box", "3 boxes".
pub fn plural(count: u64, noun: &str) -> String {
    match (count, noun.ends_with('x')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{count} {noun}es"),
        (_, false) => format!("{count} {noun}s"),
    }
}
