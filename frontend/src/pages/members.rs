//! The project page's Members panel: who works on the project and in which role. Owners add
//! people by username, change roles and remove members; everyone else sees the list.

use api::{Member, NewMember, Role};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::SubmitEvent;

use super::{LoadError, Loading};
use crate::api_client;
use crate::session::Auth;

/// What each role may do, in a few words (the server's `api::Role` is the rule).
fn describe(role: Role) -> &'static str {
    match role {
        Role::Viewer => "sees everything, changes nothing",
        Role::Annotator => "draws boxes, submits images",
        Role::Reviewer => "also approves and rejects",
        Role::Owner => "also manages the project and its members",
    }
}

/// The members panel.
#[component]
pub fn MembersPanel(project_id: i64) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let members = LocalResource::new(move || api_client::list_members(project_id));
    let error = RwSignal::new(None::<String>);
    // Admins own every project; others own it when the list says so.
    let is_owner = move || {
        let Some(user) = auth.user() else { return false };
        user.is_admin
            || members
                .get()
                .and_then(Result::ok)
                .is_some_and(|list| list.iter().any(|m| m.user_id == user.id && m.role == Role::Owner))
    };
    let change = move |outcome: Result<Vec<Member>, api_client::ApiFailure>| match outcome {
        Ok(_) => {
            error.set(None);
            members.refetch();
        }
        Err(failure) => error.set(Some(failure.message)),
    };
    let set_role = move |username: String, role: Role| {
        spawn_local(async move { change(api_client::put_member(project_id, &NewMember { username, role }).await) });
    };
    let remove = move |user_id: i64| {
        spawn_local(async move { change(api_client::remove_member(project_id, user_id).await) });
    };
    view! {
        <section class="card" aria-labelledby="members-title">
            <h2 id="members-title">"Members"</h2>
            {move || match members.get() {
                None => view! { <Loading /> }.into_any(),
                Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
                Some(Ok(list)) => {
                    let owner = is_owner();
                    view! {
                        <ul class="members">
                            {list.into_iter().map(|member| {
                                let username = member.username.clone();
                                view! {
                                    <li class="member" data-username=member.username.clone() data-role=member.role.as_str()>
                                        <strong>{member.username.clone()}</strong>
                                        {if owner {
                                            view! {
                                                <select aria-label=format!("Role of {}", member.username)
                                                    on:change=move |ev| {
                                                        if let Some(role) = Role::parse(&event_target_value(&ev)) {
                                                            set_role(username.clone(), role);
                                                        }
                                                    }>
                                                    {Role::ALL.into_iter().map(|role| view! {
                                                        <option value=role.as_str() selected=role == member.role>{role.as_str()}</option>
                                                    }).collect_view()}
                                                </select>
                                                <button class="small" on:click=move |_| remove(member.user_id)>"Remove"</button>
                                            }.into_any()
                                        } else {
                                            view! { <span class="muted">{format!(" {} — {}", member.role, describe(member.role))}</span> }.into_any()
                                        }}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                        {owner.then(|| view! { <AddMember on_add=set_role /> })}
                    }.into_any()
                }
            }}
            {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
        </section>
    }
}

/// Adds an account to the project by username.
#[component]
fn AddMember(on_add: impl Fn(String, Role) + Copy + 'static) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Annotator);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let name = username.get_untracked();
        if !name.trim().is_empty() {
            on_add(name, role.get_untracked());
            username.set(String::new());
        }
    };
    view! {
        <form class="inline-form add-member" on:submit=submit novalidate>
            <label for="member-username">"Add"</label>
            <input id="member-username" type="text" placeholder="username" autocomplete="off" bind:value=username />
            <select id="member-role" aria-label="Role"
                on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }>
                {Role::ALL.into_iter().map(|r| view! {
                    <option value=r.as_str() selected=r == Role::Annotator>{format!("{} — {}", r.as_str(), describe(r))}</option>
                }).collect_view()}
            </select>
            <button type="submit">"Add member"</button>
        </form>
    }
}
