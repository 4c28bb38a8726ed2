//! `/admin/users`: the studio's accounts, and adding one (admins only; the server refuses
//! everyone else, and so does this page).

use api::{Credentials, NewUser};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::SubmitEvent;

use super::{LoadError, Loading};
use crate::api_client;
use crate::session::Auth;

/// The users page.
#[component]
pub fn UsersPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let users = LocalResource::new(api_client::list_users);
    view! {
        <section class="page-head">
            <h1>"Users"</h1>
            <p class="muted">"Accounts of this studio. Add people here, then add them to projects from each project's Members panel."</p>
        </section>
        <Show when=move || auth.user().is_some_and(|u| u.is_admin)
            fallback=|| view! { <p class="form-error" role="alert">"Only an admin manages accounts."</p> }>
            <div class="account-layout">
                <section class="card" aria-label="Accounts">
                    {move || match users.get() {
                        None => view! { <Loading /> }.into_any(),
                        Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
                        Some(Ok(list)) => view! {
                            <table class="users">
                                <thead><tr><th>"Username"</th><th>"Admin"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|user| view! {
                                        <tr data-user-id=user.id.to_string()>
                                            <td>{user.username}</td>
                                            <td>{if user.is_admin { "yes" } else { "" }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }}
                </section>
                <NewUserForm on_added=move || users.refetch() />
            </div>
        </Show>
    }
}

#[component]
fn NewUserForm(on_added: impl Fn() + Copy + 'static) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let is_admin = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let user = NewUser {
            credentials: Credentials {
                username: username.get_untracked(),
                password: password.get_untracked(),
            },
            is_admin: is_admin.get_untracked(),
        };
        if let Err(problem) = user.credentials.validate() {
            error.set(Some(problem.to_string()));
            return;
        }
        error.set(None);
        spawn_local(async move {
            match api_client::add_user(&user).await {
                Ok(_) => {
                    username.set(String::new());
                    password.set(String::new());
                    is_admin.set(false);
                    on_added();
                }
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    view! {
        <form class="card" on:submit=submit aria-labelledby="new-user-title" novalidate>
            <h2 id="new-user-title">"New account"</h2>
            <label for="new-username">"Username"</label>
            <input id="new-username" type="text" autocomplete="off" bind:value=username />
            <label for="new-user-password">"First password"</label>
            <input id="new-user-password" type="password" autocomplete="new-password" bind:value=password />
            <label class="check">
                <input type="checkbox" bind:checked=is_admin />
                " Admin (manages accounts, owns every project)"
            </label>
            {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
            <button type="submit" class="primary">"Add account"</button>
        </form>
    }
}
