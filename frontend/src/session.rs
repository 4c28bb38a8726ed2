//! Who is signed in. The app asks `GET /api/session` when it starts; until someone is signed in
//! it shows the sign-in form (or, on a studio without any account, the first admin's setup form).
//! Any API answer of 401 later ends the session: the sign-in form then opens *over* the page, so
//! the page, its unsaved edits and the save queue stay as they are, and resume once the person
//! has signed in again (CVAT and Label Studio lost work to sessions that expired mid-edit).

use std::cell::RefCell;

use api::{Credentials, Session, User};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::SubmitEvent;

use crate::api_client;

thread_local! {
    /// The signed-in state, reachable from code outside components (the API client, the save
    /// queue); set once by [`Auth::start`].
    static AUTH: RefCell<Option<Auth>> = const { RefCell::new(None) };
}

/// Where the app stands with the server.
#[derive(Debug, Clone, PartialEq)]
pub enum SignIn {
    /// Asking the server.
    Checking,
    /// Nobody is signed in; `setup` when the studio has no account yet.
    Needed { setup: bool },
    /// Signed in.
    Active(Session),
}

/// The session, cheap to copy (signals); provided as context by the app shell.
#[derive(Clone, Copy)]
pub struct Auth {
    state: RwSignal<SignIn>,
    /// Whether anyone was signed in in this tab: the app's pages stay mounted from then on.
    was_signed_in: RwSignal<bool>,
}

impl Auth {
    /// Asks the server who is signed in, and makes the answer reachable everywhere.
    pub fn start() -> Self {
        let auth = Self {
            state: RwSignal::new(SignIn::Checking),
            was_signed_in: RwSignal::new(false),
        };
        AUTH.with(|cell| *cell.borrow_mut() = Some(auth));
        spawn_local(async move { auth.check().await });
        auth
    }

    async fn check(self) {
        match api_client::current_session().await {
            Ok(session) => self.signed_in(session),
            Err(_) => {
                let setup = api_client::setup_state().await.is_ok_and(|s| s.needed);
                self.state.set(SignIn::Needed { setup });
            }
        }
    }

    /// Someone signed in (or an account was just created for them): the app's pages mount.
    pub fn signed_in(self, session: Session) {
        self.was_signed_in.set(true);
        self.state.set(SignIn::Active(session));
    }

    /// The state now.
    pub fn state(&self) -> SignIn {
        self.state.get()
    }

    /// The signed-in account, if any.
    pub fn user(&self) -> Option<User> {
        self.state.with(|s| match s {
            SignIn::Active(session) => Some(session.user.clone()),
            _ => None,
        })
    }

    /// Whether the app's pages are mounted (someone signed in at least once in this tab).
    pub fn pages_mounted(&self) -> bool {
        self.was_signed_in.get()
    }

    /// Signs out here and on the server.
    pub fn sign_out(self) {
        spawn_local(async move {
            let _ = api_client::logout().await;
            // A fresh page: nothing of the previous person's stays on screen.
            if let Some(window) = web_sys::window() {
                let _ = window.location().set_href("/");
            }
        });
    }
}

/// The anti-forgery token every cookie-authenticated write must carry.
pub fn csrf_token() -> Option<String> {
    AUTH.with(|cell| {
        cell.borrow().and_then(|auth| {
            auth.state.with_untracked(|s| match s {
                SignIn::Active(session) => Some(session.csrf_token.clone()),
                _ => None,
            })
        })
    })
}

/// The server answered 401: the session has ended (expired, signed out elsewhere, password
/// changed). Opens the sign-in form over the page.
pub fn ended() {
    AUTH.with(|cell| {
        if let Some(auth) = *cell.borrow()
            && matches!(auth.state.get_untracked(), SignIn::Active(_))
        {
            auth.state.set(SignIn::Needed { setup: false });
        }
    });
}

/// Whether someone is signed in now.
pub fn is_signed_in() -> bool {
    AUTH.with(|cell| {
        cell.borrow()
            .is_some_and(|auth| matches!(auth.state.get_untracked(), SignIn::Active(_)))
    })
}

/// Asks the server for the session again (after a refused anti-forgery token, say).
pub async fn refresh() {
    let auth = AUTH.with(|cell| *cell.borrow());
    if let Some(auth) = auth {
        auth.check().await;
    }
}

/// The sign-in (or first-admin setup) form. `over_page`: shown over the app after a session
/// ended, saying that nothing was lost.
#[component]
pub fn SignInForm(setup: bool, over_page: bool) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let credentials = Credentials {
            username: username.get_untracked(),
            password: password.get_untracked(),
        };
        // The first admin's name and password are checked here with the server's rules.
        if setup && let Err(problem) = credentials.validate() {
            error.set(Some(problem.to_string()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let answer = if setup {
                api_client::setup(&credentials).await
            } else {
                api_client::login(&credentials).await
            };
            match answer {
                Ok(session) => {
                    password.set(String::new());
                    auth.signed_in(session);
                }
                Err(failure) => error.set(Some(failure.message)),
            }
            busy.set(false);
        });
    };
    let title = if setup { "Create the first admin" } else { "Sign in" };
    view! {
        <div class=if over_page { "sign-in-backdrop" } else { "sign-in-page" }>
            <form class="card sign-in" on:submit=submit aria-labelledby="sign-in-title" novalidate
                role=if over_page { "dialog" } else { "form" }>
                <h2 id="sign-in-title">{title}</h2>
                {over_page.then(|| view! {
                    <p class="hint">"Your session has ended. Sign in again: your unsaved edits are kept and will be sent."</p>
                })}
                {setup.then(|| view! {
                    <p class="hint">"This studio has no account yet. The first one manages the others and owns every project."</p>
                })}
                <label for="sign-in-username">"Username"</label>
                <input id="sign-in-username" name="username" type="text" autocomplete="username"
                    bind:value=username />
                <label for="sign-in-password">"Password"</label>
                <input id="sign-in-password" name="password" type="password"
                    autocomplete=if setup { "new-password" } else { "current-password" }
                    bind:value=password />
                {setup.then(|| view! {
                    <p class="hint">{format!("At least {} characters.", api::account::MIN_PASSWORD_CHARS)}</p>
                })}
                {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {move || match (busy.get(), setup) {
                        (true, _) => "Signing in…",
                        (false, true) => "Create admin and sign in",
                        (false, false) => "Sign in",
                    }}
                </button>
            </form>
        </div>
    }
}

/// The top bar's account links: who is signed in, their settings, the admin's users page, and
/// signing out.
#[component]
pub fn AccountMenu() -> impl IntoView {
    let auth = expect_context::<Auth>();
    move || {
        auth.user().map(|user| {
            let admin = user.is_admin;
            view! {
                <nav class="account-menu" aria-label="Account">
                    <a href="/account" class="account-name" data-username=user.username.clone()>{user.username.clone()}</a>
                    {admin.then(|| view! { <a href="/admin/users">"Users"</a> })}
                    <button class="small" on:click=move |_| auth.sign_out()>"Sign out"</button>
                </nav>
            }
        })
    }
}
