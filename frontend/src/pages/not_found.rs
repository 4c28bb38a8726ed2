//! Any path the app does not know.

use leptos::prelude::*;

/// 404 page.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <div class="card error-card">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <a href="/">"Back to projects"</a>
        </div>
    }
}
