//! The app shell: top bar, the sign-in gate and client-side routes (DESIGN's "App routes").

use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use crate::editor::{EditorSession, LabelingView};
use crate::pages::invite::{InviteOfferView, InvitePage, invite_secret_in_address};
use crate::pages::{AccountPage, Loading, ModelsPage, NotFound, ProjectList, ProjectPage, QualityPage, UsersPage};
use crate::session::{AccountMenu, Auth, SignIn, SignInForm};
use crate::sync::SyncQueue;

/// Root component.
#[component]
pub fn App() -> impl IntoView {
    let auth = Auth::start();
    provide_context(auth);
    // One save queue for the whole tab: edits keep flowing to the server while the person moves
    // between images (and wait, kept, while nobody is signed in).
    provide_context(SyncQueue::new());
    provide_context(EditorSession::new());
    view! {
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <img src="/favicon.svg" alt="" width="22" height="22" />
                    <span>"Distillery"</span>
                </A>
                <AccountMenu />
            </header>
            <main class="content">
                // Mounted from the first sign-in on, so a session that ends later loses nothing
                // on screen: the sign-in form opens over it.
                <Show when=move || auth.pages_mounted()>
                    <Routes fallback=NotFound>
                        <Route path=path!("/") view=ProjectList />
                        <Route path=path!("/account") view=AccountPage />
                        <Route path=path!("/admin/users") view=UsersPage />
                        <Route path=path!("/invite/:secret") view=InvitePage />
                        <Route path=path!("/projects/:pid") view=ProjectPage />
                        <Route path=path!("/projects/:pid/images/:iid") view=LabelingView />
                        <Route path=path!("/projects/:pid/models") view=ModelsPage />
                        <Route path=path!("/projects/:pid/quality") view=QualityPage />
                    </Routes>
                </Show>
                {move || match auth.state() {
                    SignIn::Checking => view! { <Loading /> }.into_any(),
                    SignIn::Needed { setup } => {
                        // An invite link opens without an account: it offers to create one.
                        match invite_secret_in_address().filter(|_| !setup && !auth.pages_mounted()) {
                            Some(secret) => view! { <InviteOfferView secret /> }.into_any(),
                            None => view! { <SignInForm setup over_page=auth.pages_mounted() /> }.into_any(),
                        }
                    }
                    SignIn::Active(_) => ().into_any(),
                }}
            </main>
        </Router>
    }
}
