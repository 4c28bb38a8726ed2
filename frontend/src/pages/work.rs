//! The project page's Work panel: "Label next" and "Review next" open the shared queue's next
//! image for this person (one nobody else holds), and a table says what each person has done —
//! submitted, approved, rejected, reviewed.

use api::Role;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

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
            let strategy = super::queue::remembered_strategy(project_id);
            match api_client::next_image(project_id, reviewing, strategy, 0).await {
                Ok(api::NextImage { image_id: Some(id), .. }) => {
                    navigate(&format!("/projects/{project_id}/images/{id}"), Default::default());
                }
                Ok(next) => notice.set(Some(match (reviewing, next.held_by_others) {
                    (true, 0) => "Nothing is waiting for review.".into(),
                    (false, 0) => "Every image is labeled.".into(),
                    (_, held) => format!(
                        "Nothing free: {} open by someone else.",
                        super::plural(u64::from(held), "image")
                    ),
                })),
                Err(failure) => notice.set(Some(failure.message)),
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
                            <th scope="col" title="Images whose latest submission is theirs">"Labeled"</th>
                            <th scope="col">"Approved"</th>
                            <th scope="col">"Rejected"</th>
                            <th scope="col" title="Approvals and rejections made">"Reviewed"</th>
                        </tr></thead>
                        <tbody>
                            {list.into_iter().map(|person| view! {
                                <tr data-username=person.username.clone()>
                                    <th scope="row">{person.username.clone()}</th>
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
        </section>
    }
}
