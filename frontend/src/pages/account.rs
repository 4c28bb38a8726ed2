//! `/account`: the signed-in person's password and API tokens.

use api::{ApiToken, PasswordChange};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::SubmitEvent;

use super::{LoadError, Loading};
use crate::api_client;
use crate::session::Auth;

/// The account page.
#[component]
pub fn AccountPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    view! {
        <section class="page-head">
            <h1>{move || auth.user().map(|u| u.username).unwrap_or_default()}</h1>
            <p class="muted">"Your password and the tokens your scripts sign in with."</p>
        </section>
        <div class="account-layout">
            <PasswordForm />
            <Tokens />
        </div>
    }
}

/// Changing one's password ends one's other sessions (a stolen one dies with the old password).
#[component]
fn PasswordForm() -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let message = RwSignal::new(None::<Result<String, String>>);
    let busy = RwSignal::new(false);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let change = PasswordChange {
            current: current.get_untracked(),
            new: new.get_untracked(),
        };
        if let Err(problem) = api::validate_password(&change.new) {
            message.set(Some(Err(problem.to_string())));
            return;
        }
        busy.set(true);
        spawn_local(async move {
            match api_client::change_password(&change).await {
                Ok(()) => {
                    current.set(String::new());
                    new.set(String::new());
                    message.set(Some(Ok("Password changed; your other sessions have ended.".into())));
                }
                Err(failure) => message.set(Some(Err(failure.message))),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="card" on:submit=submit aria-labelledby="password-title" novalidate>
            <h2 id="password-title">"Password"</h2>
            <label for="current-password">"Current password"</label>
            <input id="current-password" type="password" autocomplete="current-password" bind:value=current />
            <label for="new-password">"New password"</label>
            <input id="new-password" type="password" autocomplete="new-password" bind:value=new />
            <p class="hint">{format!("At least {} characters. Your other sessions end.", api::account::MIN_PASSWORD_CHARS)}</p>
            {move || message.get().map(|m| match m {
                Ok(text) => view! { <p class="form-ok" role="status">{text}</p> }.into_any(),
                Err(text) => view! { <p class="form-error" role="alert">{text}</p> }.into_any(),
            })}
            <button type="submit" class="primary" disabled=move || busy.get()>"Change password"</button>
        </form>
    }
}

/// The person's API tokens: create one (its secret shown once), revoke any.
#[component]
fn Tokens() -> impl IntoView {
    let tokens = LocalResource::new(api_client::list_tokens);
    let name = RwSignal::new(String::new());
    let created = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let create = move |event: SubmitEvent| {
        event.prevent_default();
        let label = name.get_untracked();
        if let Err(problem) = api::validate_token_name(&label) {
            error.set(Some(problem.to_string()));
            return;
        }
        error.set(None);
        spawn_local(async move {
            match api_client::create_token(&label).await {
                Ok(token) => {
                    name.set(String::new());
                    created.set(Some(token.token));
                    tokens.refetch();
                }
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    let revoke = move |token: ApiToken| {
        spawn_local(async move {
            match api_client::revoke_token(token.id).await {
                Ok(()) => tokens.refetch(),
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="tokens-title">
            <h2 id="tokens-title">"API tokens"</h2>
            <p class="hint">"Scripts send one as " <code>"Authorization: Bearer …"</code> "; it acts as you."</p>
            {move || created.get().map(|secret| view! {
                <div class="token-secret" role="status">
                    <p>"Copy it now — it is not shown again:"</p>
                    <code class="secret">{secret}</code>
                </div>
            })}
            {move || match tokens.get() {
                None => view! { <Loading /> }.into_any(),
                Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="muted">"No tokens."</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <table class="tokens">
                        <thead><tr><th>"Name"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|token| {
                                let shown = token.clone();
                                view! {
                                    <tr data-token-id=shown.id.to_string()>
                                        <td>{shown.name}</td>
                                        <td>{shown.created_at.get(..16).unwrap_or_default().replace('T', " ")}</td>
                                        <td>{shown.last_used_at.map_or("never".to_owned(), |t| t.get(..16).unwrap_or_default().replace('T', " "))}</td>
                                        <td><button class="small danger" on:click=move |_| revoke(token.clone())>"Revoke"</button></td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
            <form class="inline-form" on:submit=create novalidate>
                <label for="token-name">"New token"</label>
                <input id="token-name" type="text" placeholder="nightly export" autocomplete="off" bind:value=name />
                <button type="submit">"Create token"</button>
            </form>
            {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
        </section>
    }
}
