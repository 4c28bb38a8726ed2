//! The project page's "Label next" panel: unlabeled images ranked by the active student's
//! uncertainty (or another strategy), and scoring the whole project on the server as a job.

use api::{Job, JobKind, NewJob, Queue, Strategy};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::plural;
use crate::api_client;
use crate::sync::local_storage;

/// How many ranked images the panel lists.
const SHOWN: u32 = 15;

/// The ranking picked in the panel, remembered per project in `localStorage` so the editor's
/// "Next" walks the same order; least confidence until one is picked.
pub fn remembered_strategy(project_id: i64) -> Strategy {
    local_storage()
        .and_then(|storage| storage.get_item(&strategy_key(project_id)).ok().flatten())
        .and_then(|name| Strategy::parse(&name))
        .unwrap_or(Strategy::LeastConfidence)
}

fn remember_strategy(project_id: i64, strategy: Strategy) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(&strategy_key(project_id), strategy.as_str());
    }
}

fn strategy_key(project_id: i64) -> String {
    format!("distillery.queue-strategy.{project_id}")
}

#[component]
pub fn QueuePanel(project_id: i64) -> impl IntoView {
    let strategy = RwSignal::new(remembered_strategy(project_id));
    let refresh = RwSignal::new(0u32);
    let queue = LocalResource::new(move || {
        refresh.track();
        let strategy = strategy.get();
        async move { api_client::queue(project_id, strategy, SHOWN).await }
    });
    let job = RwSignal::new(None::<Job>);
    let job_error = RwSignal::new(None::<String>);
    // Progress is pushed by the server (an event stream per job), not polled.
    let watch = move |created: Job| {
        job.set(Some(created.clone()));
        spawn_local(async move {
            match api_client::follow_job(created.id, move |fresh| job.set(Some(fresh))).await {
                Ok(finished) => {
                    job.set(Some(finished));
                    refresh.update(|r| *r += 1);
                }
                Err(failure) => job_error.set(Some(failure.message)),
            }
        });
    };
    let start_job = move |_| {
        job_error.set(None);
        spawn_local(async move {
            match api_client::create_job(
                project_id,
                &NewJob {
                    kind: JobKind::Score,
                    model_id: None,
                    images: None,
                    min_conf: None,
                    train: None,
                    gpu: false,
                },
            )
            .await
            {
                Ok(created) => watch(created),
                Err(failure) => job_error.set(Some(failure.message)),
            }
        });
    };
    let cancel = move |_| {
        if let Some(current) = job.get_untracked() {
            spawn_local(async move {
                if let Err(failure) = api_client::cancel_job(current.id).await {
                    job_error.set(Some(failure.message));
                }
            });
        }
    };
    view! {
        <section class="card queue" aria-labelledby="queue-title">
            <h2 id="queue-title">"Label next"</h2>
            <label for="queue-strategy" class="small">"Rank by"</label>
            <select id="queue-strategy" on:change=move |ev| {
                if let Some(s) = Strategy::parse(&event_target_value(&ev)) {
                    remember_strategy(project_id, s);
                    strategy.set(s);
                }
            }>
                {Strategy::ALL.into_iter().map(|s| view! {
                    <option value=s.as_str() selected=s == strategy.get_untracked()>{strategy_label(s)}</option>
                }).collect_view()}
            </select>
            <button class="small" on:click=move |_| refresh.update(|r| *r += 1)>"Refresh"</button>
            {move || queue.get().map(|result| match result {
                Ok(q) => view! { <RankedList queue=q project_id strategy=strategy.get_untracked() /> }.into_any(),
                Err(failure) if failure.code == "no_student" || failure.code == "no_model" => view! {
                    <p class="muted small">{failure.message}" "<a href=format!("/projects/{project_id}/models")>"Models"</a></p>
                }.into_any(),
                Err(failure) => view! { <p class="form-error small" role="alert">{failure.message}</p> }.into_any(),
            })}
            <p class="small">
                <button id="score-all" on:click=start_job disabled=move || job.with(|j| j.as_ref().is_some_and(|j| !j.state.is_final()))>
                    "Score all on the server"
                </button>
                <a class="small" href=format!("/projects/{project_id}/models")>" Models"</a>
            </p>
            {move || job.get().map(|j| view! {
                <p class="small job" data-job-state=j.state.as_str()>
                    {format!("Scoring: {} · {} / {}", j.state.as_str(), j.done, j.total)}
                    {j.message.clone().map(|m| format!(" — {m}"))}
                    {j.worker.clone().map(|w| format!(" · on {w}"))}
                    {(!j.state.is_final()).then(|| view! { <button class="small" on:click=cancel>"Cancel"</button> })}
                </p>
            })}
            {move || job_error.get().map(|m| view! { <p class="form-error small" role="alert">{m}</p> })}
        </section>
    }
}

/// A strategy's name in the picker, with what it needs when that is more than a student.
fn strategy_label(strategy: Strategy) -> String {
    let name = strategy.as_str().replace('_', " ");
    match strategy {
        Strategy::Disagreement => format!("{name} (needs teacher labels)"),
        Strategy::Diversity => format!("{name} (needs a model with an embedding output)"),
        Strategy::LabelErrors => "label errors (approved images a model disagrees with)".to_owned(),
        _ => name,
    }
}

/// Why a ranking is empty, in words that say what to do.
fn empty_reason(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Disagreement => {
            "Nothing to compare yet: disagreement ranks images that a teacher has labeled, and no teacher has labeled any image of this project."
        }
        Strategy::LabelErrors => {
            "No suspected label errors: no approved image the model has seen disagrees with it (newly approved images are being checked)."
        }
        _ => {
            "Nothing ranked yet: open an image (the student pre-labels the rest while the tab is open) or score all on the server."
        }
    }
}

#[component]
fn RankedList(queue: Queue, project_id: i64, strategy: Strategy) -> impl IntoView {
    let unscored = queue.unscored;
    view! {
        {queue.entries.is_empty().then(|| view! { <p class="muted small empty-ranking">{empty_reason(strategy)}</p> })}
        <ol class="ranked">
            {queue.entries.into_iter().map(|entry| view! {
                <li data-image-id=entry.image_id.to_string() data-score=format!("{:.4}", entry.score)>
                    <a href=format!("/projects/{project_id}/images/{}", entry.image_id)>{entry.file_name}</a>
                    <span class="muted small">{format!(" {:.3}", entry.score)}</span>
                </li>
            }).collect_view()}
        </ol>
        {(unscored > 0).then(|| view! { <p class="muted small">{format!("{} not scored by this model yet", plural(unscored, "image"))}</p> })}
    }
}
