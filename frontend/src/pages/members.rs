//! The project page's Members panel: who works on the project and in which role. Owners add
//! people by username, change roles and remove members; everyone else sees the list.

use api::{Invite, Member, NewInvite, NewMember, Role};
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
                        {owner.then(|| view! { <AddMember on_add=set_role /> <InviteLinks project_id /> })}
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

/// How long a new invite link lasts: the choices offered, in hours.
const INVITE_LIFETIMES: [(u32, &str); 3] = [(24, "1 day"), (7 * 24, "7 days"), (30 * 24, "30 days")];

/// Owners' invite links: create one for a role and a lifetime (its address is shown once, to
/// copy), see who made the valid ones and how many joined, revoke them.
#[component]
fn InviteLinks(project_id: i64) -> impl IntoView {
    let links = LocalResource::new(move || api_client::list_invites(project_id));
    let role = RwSignal::new(Role::Annotator);
    let hours = RwSignal::new(INVITE_LIFETIMES[1].0);
    let created = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let create = move |event: SubmitEvent| {
        event.prevent_default();
        let invite = NewInvite {
            role: role.get_untracked(),
            hours: hours.get_untracked(),
        };
        spawn_local(async move {
            match api_client::create_invite(project_id, &invite).await {
                Ok(made) => {
                    let origin = web_sys::window()
                        .and_then(|w| w.location().origin().ok())
                        .unwrap_or_default();
                    created.set(Some(format!("{origin}/invite/{}", made.secret)));
                    error.set(None);
                    links.refetch();
                }
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    let revoke = move |invite_id: i64| {
        spawn_local(async move {
            match api_client::revoke_invite(project_id, invite_id).await {
                Ok(()) => {
                    created.set(None);
                    links.refetch();
                }
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    view! {
        <form class="inline-form invite-form" on:submit=create novalidate>
            <label for="invite-role">"Invite link for"</label>
            <select id="invite-role" on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }>
                {Role::ALL.into_iter().map(|r| view! {
                    <option value=r.as_str() selected=r == Role::Annotator>{r.as_str()}</option>
                }).collect_view()}
            </select>
            <select id="invite-hours" aria-label="Valid for"
                on:change=move |ev| if let Ok(h) = event_target_value(&ev).parse() { hours.set(h) }>
                {INVITE_LIFETIMES.into_iter().map(|(h, label)| view! {
                    <option value=h.to_string() selected=h == INVITE_LIFETIMES[1].0>{format!("valid {label}")}</option>
                }).collect_view()}
            </select>
            <button type="submit">"Create link"</button>
        </form>
        {move || created.get().map(|link| view! {
            <p class="small invite-created">"Send this link (shown once): "
                <input class="invite-link" type="text" readonly prop:value=link.clone() aria-label="Invite link"
                    on:focus=move |ev| { if let Some(input) = ev.target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlInputElement>(t).ok()) { input.select(); } } />
            </p>
        })}
        {move || links.get().and_then(Result::ok).filter(|list| !list.is_empty()).map(|list: Vec<Invite>| view! {
            <ul class="invites small">
                {list.into_iter().map(|invite| view! {
                    <li class="invite" data-invite-id=invite.id.to_string() data-role=invite.role.as_str()>
                        {format!("{} link by {}, until {} · {} joined ", invite.role, invite.created_by,
                            invite.expires_at.get(..16).unwrap_or(&invite.expires_at).replace('T', " "), invite.joined)}
                        <button class="small" on:click=move |_| revoke(invite.id)>"Revoke"</button>
                    </li>
                }).collect_view()}
            </ul>
        })}
        {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
    }
}
