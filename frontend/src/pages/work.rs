//! The project page's Work panel: "Label next" and "Review next" open the shared queue's next
//! image for this person (one nobody else holds), a table says what each person has to do and
//! has done — assigned, submitted, approved, rejected, reviewed — and owners assign images.

use api::{NewAssignment, Role};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use web_sys::SubmitEvent;

use super::{LoadError, Loading};
use crate::api_client;

/// The panel. `role` is the viewer's role here (`None` for admins, who own everything).
#[component]
pub fn WorkPanel(project_id: i64, role: Option<Role>) -> impl IntoView {
    let role = role.unwrap_or(Role::Owner);
    let people = LocalResource::new(move || api_client::contributions(project_id));
    let notice = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let open_next = move |reviewing: bool| {
        let navigate = navigate.clone();
        spawn_local(async move {
            match next_image_or_why(project_id, reviewing, None).await {
                Ok(id) => navigate(&format!("/projects/{project_id}/images/{id}"), Default::default()),
                Err(why) => notice.set(Some(why)),
            }
        });
    };
    let open_next = StoredValue::new(open_next);
    view! {
        <section class="card work" aria-labelledby="work-title">
            <h2 id="work-title">"Work"</h2>
            <div class="work-actions">
                {role.allows(Role::Annotator).then(|| view! {
                    <button class="primary label-next" on:click=move |_| open_next.with_value(|go| go(false))
                        title="The next unlabeled image nobody else has open">"Label next"</button>
                })}
                {role.allows(Role::Reviewer).then(|| view! {
                    <button class="review-next" on:click=move |_| open_next.with_value(|go| go(true))
                        title="The oldest submitted image nobody else has open">"Review next"</button>
                })}
            </div>
            {move || notice.get().map(|message| view! { <p class="muted small work-notice" role="status">{message}</p> })}
            {move || match people.get() {
                None => view! { <Loading /> }.into_any(),
                Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
                Some(Ok(list)) => view! {
                    <table class="contributions small">
                        <thead><tr>
                            <th scope="col">"Person"</th>
                            <th scope="col" title="Unlabeled images assigned to them">"To do"</th>
                            <th scope="col" title="Images whose latest submission is theirs">"Labeled"</th>
                            <th scope="col">"Approved"</th>
                            <th scope="col">"Rejected"</th>
                            <th scope="col" title="Approvals and rejections made">"Reviewed"</th>
                        </tr></thead>
                        <tbody>
                            {list.into_iter().map(|person| view! {
                                <tr data-username=person.username.clone()>
                                    <th scope="row">{person.username.clone()}</th>
                                    <td data-count="to_do">{person.to_do}</td>
                                    <td data-count="labeled">{person.labeled}</td>
                                    <td data-count="approved">{person.approved}</td>
                                    <td data-count="rejected">{person.rejected}</td>
                                    <td data-count="reviewed">{person.reviewed}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
            {role.allows(Role::Owner).then(|| view! { <AssignImages project_id on_done=move || people.refetch() /> })}
        </section>
    }
}

/// The shared queue's next image for this person — labeling or reviewing, by the ranking picked
/// in the "Label next" panel, never `after` (the image on screen) — or why there is none, in
/// words. The project page's buttons and the editor's Next both go through here.
pub async fn next_image_or_why(project_id: i64, reviewing: bool, after: Option<i64>) -> Result<i64, String> {
    let strategy = super::queue::remembered_strategy(project_id);
    let next = api_client::next_image(project_id, reviewing, strategy, after)
        .await
        .map_err(|failure| failure.message)?;
    if let Some(id) = next.image_id {
        return Ok(id);
    }
    let other = if after.is_some() { " other" } else { "" };
    Err(match (reviewing, next.held_by_others) {
        (true, 0) => format!("No{other} image is waiting for review."),
        (false, 0) => format!("Every{other} image is labeled."),
        (_, held) => format!(
            "Nothing left that is free: {} open by someone else.",
            super::plural(u64::from(held), "image")
        ),
    })
}

/// Owners' form: give a member the next unlabeled images nobody is assigned, or take theirs back.
#[component]
fn AssignImages(project_id: i64, on_done: impl Fn() + Copy + 'static) -> impl IntoView {
    let members = LocalResource::new(move || api_client::list_members(project_id));
    let username = RwSignal::new(String::new());
    let count = RwSignal::new(String::from("10"));
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let send = move |count: u32| {
        let username = username.get_untracked();
        if username.is_empty() {
            outcome.set(Some(Err("Pick whom to assign images to.".into())));
            return;
        }
        spawn_local(async move {
            let result = api_client::assign_images(project_id, &NewAssignment { username, count }).await;
            outcome.set(Some(match result {
                Ok(done) if count == 0 => Ok(format!("Took back {}'s unlabeled images.", done.username)),
                Ok(done) => Ok(format!(
                    "{} assigned to {} ({} to do).",
                    super::plural(done.added, "image"),
                    done.username,
                    done.to_do
                )),
                Err(failure) => Err(failure.message),
            }));
            on_done();
        });
    };
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        match count.get_untracked().trim().parse::<u32>() {
            Ok(n) if n > 0 => send(n),
            _ => outcome.set(Some(Err("Say how many images: a whole number above 0.".into()))),
        }
    };
    view! {
        <form class="inline-form assign-form" on:submit=submit novalidate>
            <label for="assign-count">"Assign"</label>
            <input id="assign-count" type="number" min="1" bind:value=count />
            <label for="assign-user">"unlabeled images to"</label>
            <select id="assign-user" on:change=move |ev| username.set(event_target_value(&ev))>
                <option value="">"—"</option>
                {move || members.get().and_then(Result::ok).unwrap_or_default().into_iter()
                    .filter(|m| m.role.allows(Role::Annotator))
                    .map(|m| view! { <option value=m.username.clone()>{m.username.clone()}</option> })
                    .collect_view()}
            </select>
            <button type="submit">"Assign"</button>
            <button type="button" class="small" on:click=move |_| send(0)
                title="Their unlabeled images go back to everyone">"Take back"</button>
        </form>
        {move || outcome.get().map(|result| match result {
            Ok(message) => view! { <p class="small assign-outcome" role="status">{message}</p> }.into_any(),
            Err(message) => view! { <p class="form-error" role="alert">{message}</p> }.into_any(),
        })}
    }
}
