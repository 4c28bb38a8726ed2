//! The Models page's training panel: start a training job with its settings (from scratch or
//! fine-tuning a student), cancel it, resume a cancelled or failed one (from its last epoch's
//! checkpoint), and watch it — the server pushes the job's progress, and
//! after every epoch the panel redraws the loss, mAP and learning-rate curves from
//! `/api/jobs/{jid}/epochs`. The project's latest training is shown when the page opens, so a
//! training started elsewhere (another tab, `distillery distill`) can be followed too.

use api::{Job, JobKind, JobState, NewJob, RegisteredModel, TrainSettings, TrainingEpoch};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api_client;
use crate::charts::{EpochChart, Series};

/// Training settings and progress. `on_published` runs when a training has registered a new
/// student (the page reloads its model list).
#[component]
pub fn TrainStudent(
    project_id: i64,
    students: Vec<RegisteredModel>,
    on_published: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let epochs_setting = RwSignal::new("30".to_string());
    let batch = RwSignal::new("16".to_string());
    let imgsz = RwSignal::new("320".to_string());
    let min_conf = RwSignal::new("0.25".to_string());
    let start_from = RwSignal::new(String::new());
    let job = RwSignal::new(None::<Job>);
    let epochs = RwSignal::new(Vec::<TrainingEpoch>::new());
    let failure = RwSignal::new(None::<String>);
    let running = move || job.with(|j| j.as_ref().is_some_and(|j| !j.state.is_final()));
    // A stopped training and the epochs it had finished (each one checkpointed).
    let resumable = move || {
        job.with(|j| {
            j.as_ref()
                .filter(|j| matches!(j.state, JobState::Cancelled | JobState::Failed))
                .map(|j| j.done)
        })
    };

    // Follows a job until it ends, refreshing the curves whenever an epoch has finished.
    let follow = move |followed: Job| {
        let job_id = followed.id;
        job.set(Some(followed));
        spawn_local(async move {
            refresh_epochs(job_id, epochs).await;
            let seen = RwSignal::new(0u64);
            let result = api_client::follow_job(job_id, move |fresh| {
                if fresh.done != seen.get_untracked() {
                    seen.set(fresh.done);
                    spawn_local(refresh_epochs(job_id, epochs));
                }
                job.set(Some(fresh));
            })
            .await;
            match result {
                Ok(finished) => {
                    refresh_epochs(job_id, epochs).await;
                    let published = finished.state == JobState::Succeeded;
                    job.set(Some(finished));
                    if published {
                        on_published();
                    }
                }
                Err(error) => failure.set(Some(error.message)),
            }
        });
    };

    // The latest training of the project, if there is one.
    spawn_local(async move {
        if let Ok(jobs) = api_client::list_jobs(project_id).await
            && let Some(latest) = jobs.into_iter().find(|j| j.kind == JobKind::Train)
        {
            if latest.state.is_final() {
                let job_id = latest.id;
                job.set(Some(latest));
                refresh_epochs(job_id, epochs).await;
            } else {
                follow(latest);
            }
        }
    });

    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        failure.set(None);
        let number = |s: RwSignal<String>| s.get_untracked().trim().parse::<u32>().ok();
        let new_job = NewJob {
            kind: JobKind::Train,
            model_id: start_from.get_untracked().parse().ok(),
            images: None,
            min_conf: min_conf.get_untracked().trim().parse().ok(),
            train: Some(TrainSettings {
                epochs: number(epochs_setting),
                batch: number(batch),
                imgsz: number(imgsz),
                ..TrainSettings::default()
            }),
            gpu: false,
        };
        spawn_local(async move {
            match api_client::create_job(project_id, &new_job).await {
                Ok(created) => {
                    epochs.set(Vec::new());
                    follow(created);
                }
                Err(error) => failure.set(Some(error.message)),
            }
        });
    };
    let cancel = move |_| {
        if let Some(id) = job.with_untracked(|j| j.as_ref().map(|j| j.id)) {
            spawn_local(async move {
                if let Err(error) = api_client::cancel_job(id).await {
                    failure.set(Some(error.message));
                }
            });
        }
    };

    let resume = move |_| {
        failure.set(None);
        if let Some(id) = job.with_untracked(|j| j.as_ref().map(|j| j.id)) {
            spawn_local(async move {
                match api_client::resume_job(id).await {
                    Ok(queued) => follow(queued),
                    Err(error) => failure.set(Some(error.message)),
                }
            });
        }
    };

    view! {
        <section class="card training" aria-labelledby="train-title">
            <h2 id="train-title">"Train a student"</h2>
            <p class="muted small">"Learns from human labels and, on images nobody has labeled yet, model proposals at or above the confidence below — what the YOLO export with “auto” holds — on the project’s train split, validated on its val split after every epoch. The best epoch becomes the active student; a failed training changes nothing."</p>
            <form class="train-form" on:submit=start>
                <label>"Epochs"<input id="train-epochs" type="number" min="1" max="10000" prop:value=epochs_setting on:input=move |ev| epochs_setting.set(event_target_value(&ev)) /></label>
                <label>"Batch"<input id="train-batch" type="number" min="1" max="1024" prop:value=batch on:input=move |ev| batch.set(event_target_value(&ev)) /></label>
                <label>"Image size"
                    <select id="train-imgsz" on:change=move |ev| imgsz.set(event_target_value(&ev))>
                        {[160, 224, 320, 416, 480, 640].into_iter().map(|s| view! {
                            <option value=s.to_string() selected=move || imgsz.get() == s.to_string()>{format!("{s} px")}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>"Proposals from confidence"<input id="train-min-conf" type="number" min="0" max="1" step="0.05" prop:value=min_conf on:input=move |ev| min_conf.set(event_target_value(&ev)) /></label>
                <label>"Start from"
                    <select id="train-start" on:change=move |ev| start_from.set(event_target_value(&ev))>
                        <option value="" selected>"Scratch (random weights)"</option>
                        {students.into_iter().map(|m| view! {
                            <option value=m.id.to_string()>{format!("Fine-tune {}", m.file_name)}</option>
                        }).collect_view()}
                    </select>
                </label>
                <p>
                    <button id="start-training" type="submit" disabled=running>"Start training"</button>
                    {move || running().then(|| view! { <button id="cancel-training" type="button" class="secondary" on:click=cancel>"Cancel"</button> })}
                    {move || resumable().map(|done| {
                        let label = if done > 0 { format!("Resume after epoch {done}") } else { "Run it again".to_owned() };
                        view! { <button id="resume-training" type="button" class="secondary" on:click=resume>{label}</button> }
                    })}
                </p>
            </form>
            {move || failure.get().map(|m| view! { <p class="form-error small" role="alert">{m}</p> })}
            {move || job.get().map(|j| view! {
                <p class="small job training-status" data-job-state=j.state.as_str() role="status">
                    {format!("Training: {} · epoch {} of {}", j.state.as_str(), j.done, j.total)}
                    {j.message.clone().map(|m| format!(" — {m}"))}
                    {j.worker.clone().map(|w| format!(" · on {w}"))}
                </p>
            })}
            {move || {
                let list = epochs.get();
                let total = list.last().map_or(0, |e| e.epochs);
                (!list.is_empty()).then(|| view! { <Curves epochs=list total /> })
            }}
        </section>
    }
}

async fn refresh_epochs(job_id: i64, epochs: RwSignal<Vec<TrainingEpoch>>) {
    if let Ok(list) = api_client::training_epochs(job_id).await {
        epochs.set(list);
    }
}

/// Losses, validation mAP and the learning rate over the epochs so far.
#[component]
fn Curves(epochs: Vec<TrainingEpoch>, total: u32) -> impl IntoView {
    let column = |f: fn(&TrainingEpoch) -> f64| epochs.iter().map(f).collect::<Vec<f64>>();
    let losses = vec![
        Series {
            name: "box",
            color: "#2563eb",
            values: column(|e| f64::from(e.box_loss)),
        },
        Series {
            name: "cls",
            color: "#dc2626",
            values: column(|e| f64::from(e.class_loss)),
        },
        Series {
            name: "dfl",
            color: "#059669",
            values: column(|e| f64::from(e.dfl_loss)),
        },
    ];
    let quality = vec![
        Series {
            name: "mAP50",
            color: "#7c3aed",
            values: column(|e| e.map50),
        },
        Series {
            name: "mAP50-95",
            color: "#d97706",
            values: column(|e| e.map50_95),
        },
    ];
    let rate = vec![Series {
        name: "lr",
        color: "#475569",
        values: column(|e| e.learning_rate),
    }];
    let best = epochs.iter().rfind(|e| e.best).cloned();
    let last = epochs.last().cloned();
    view! {
        <div class="training-charts">
            <EpochChart title="Training loss" epochs=total series=losses />
            <EpochChart title="Validation mAP" epochs=total series=quality y_max=1.0 />
            <EpochChart title="Learning rate" epochs=total series=rate />
        </div>
        {last.map(|e| view! {
            <p class="small muted">{format!("{:.1} images/s · {:.0} s so far · about {:.0} s left", e.images_per_second, e.elapsed_seconds, e.eta_seconds)}
                {best.map(|b| format!(" · best epoch {} (mAP50 {:.3}, mAP50-95 {:.3})", b.epoch, b.map50, b.map50_95))}
            </p>
        })}
    }
}
