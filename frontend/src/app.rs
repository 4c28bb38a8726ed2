//! The app shell: top bar and client-side routes (DESIGN's "App routes").

use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use crate::editor::{EditorSession, LabelingView};
use crate::pages::{ModelsPage, NotFound, ProjectList, ProjectPage, QualityPage};
use crate::sync::SyncQueue;

/// Root component.
#[component]
pub fn App() -> impl IntoView {
    // One save queue for the whole tab: edits keep flowing to the server while the person moves
    // between images.
    provide_context(SyncQueue::new());
    provide_context(EditorSession::new());
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
                    <Route path=path!("/projects/:pid/models") view=ModelsPage />
                    <Route path=path!("/projects/:pid/quality") view=QualityPage />
                </Routes>
            </main>
        </Router>
    }
}
