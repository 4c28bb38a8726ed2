//! `/invite/{secret}`: an invite link. It says which project and role it offers; someone signed
//! in joins with one click, someone without an account creates one on the spot (or signs in
//! first). An expired or revoked link says so.

use api::{AcceptInvite, Credentials};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use web_sys::SubmitEvent;

use super::{LoadError, Loading};
use crate::api_client;
use crate::session::{Auth, SignInForm};

/// The secret of the invite link being visited, if the address is one.
pub fn invite_secret_in_address() -> Option<String> {
    let path = web_sys::window()?.location().pathname().ok()?;
    let secret = path.strip_prefix("/invite/")?.trim_end_matches('/');
    (!secret.is_empty() && !secret.contains('/')).then(|| secret.to_owned())
}

/// The route's page (signed in).
#[component]
pub fn InvitePage() -> impl IntoView {
    move || invite_secret_in_address().map(|secret| view! { <InviteOfferView secret /> })
}

/// What the link offers, and the way to take it.
#[component]
pub fn InviteOfferView(secret: String) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let offer = LocalResource::new({
        let secret = secret.clone();
        move || {
            let secret = secret.clone();
            async move { api_client::invite_offer(&secret).await }
        }
    });
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let signing_in = RwSignal::new(false);
    let navigate = use_navigate();
    let secret = StoredValue::new(secret);
    let join = move |account: Option<Credentials>| {
        let navigate = navigate.clone();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let secret = secret.get_value();
            match api_client::accept_invite(&secret, &AcceptInvite { account }).await {
                Ok(joined) => {
                    if let Some(session) = joined.session {
                        auth.signed_in(session);
                    }
                    navigate(&format!("/projects/{}", joined.project_id), Default::default());
                }
                Err(failure) => error.set(Some(failure.message)),
            }
            busy.set(false);
        });
    };
    let join = StoredValue::new(join);
    let create_account = move |event: SubmitEvent| {
        event.prevent_default();
        let credentials = Credentials {
            username: username.get_untracked(),
            password: password.get_untracked(),
        };
        if let Err(problem) = credentials.validate() {
            error.set(Some(problem.to_string()));
            return;
        }
        join.with_value(|join| join(Some(credentials)));
    };
    view! {
        <div class="sign-in-page">
            {move || match offer.get() {
                None => view! { <Loading /> }.into_any(),
                Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
                Some(Ok(offer)) => {
                    let title = format!("Join {} as {}", offer.project_name, offer.role);
                    let until = offer.expires_at.get(..16).unwrap_or(&offer.expires_at).replace('T', " ");
                    if let Some(user) = auth.user() {
                        view! {
                            <section class="card sign-in invite" aria-labelledby="invite-title">
                                <h2 id="invite-title">{title}</h2>
                                <p class="hint">{format!("You are signed in as {}. The link works until {until} UTC.", user.username)}</p>
                                {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
                                <button class="primary join" disabled=move || busy.get()
                                    on:click=move |_| join.with_value(|join| join(None))>"Join the project"</button>
                            </section>
                        }.into_any()
                    } else if signing_in.get() {
                        view! { <SignInForm setup=false over_page=false /> }.into_any()
                    } else {
                        view! {
                            <form class="card sign-in invite" on:submit=create_account aria-labelledby="invite-title" novalidate>
                                <h2 id="invite-title">{title}</h2>
                                <p class="hint">{format!("Choose a username and password for your new account. The link works until {until} UTC.")}</p>
                                <label for="invite-username">"Username"</label>
                                <input id="invite-username" type="text" autocomplete="username" bind:value=username />
                                <label for="invite-password">"Password"</label>
                                <input id="invite-password" type="password" autocomplete="new-password" bind:value=password />
                                <p class="hint">{format!("At least {} characters.", api::account::MIN_PASSWORD_CHARS)}</p>
                                {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
                                <button type="submit" class="primary" disabled=move || busy.get()>"Create account and join"</button>
                                <button type="button" class="link" on:click=move |_| signing_in.set(true)>"I have an account: sign in"</button>
                            </form>
                        }.into_any()
                    }
                }
            }}
        </div>
    }
}
