//! The app shell: top bar and client-side routes (DESIGN's "App routes").

use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use crate::pages::{LabelingView, NotFound, ProjectList, ProjectPage};

/// Root component.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <img src="/favicon.svg" alt="" width="22" height="22" />
                    <span>"Distillery"</span>
                </A>
            </header>
            <main class="content">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=ProjectList />
                    <Route path=path!("/projects/:pid") view=ProjectPage />
                    <Route path=path!("/projects/:pid/images/:iid") view=LabelingView />
                </Routes>
            </main>
        </Router>
    }
}
