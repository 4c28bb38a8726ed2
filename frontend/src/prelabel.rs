//! Pre-labels: the active student's proposals for the image on screen, and background
//! pre-labeling of the rest of the project while nothing on screen waits for the worker. Each
//! image the worker sees is reported to the server with its uncertainty scores, which is what
//! ranks the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::{PredictionReport, RegisteredModel};
use gloo_timers::future::sleep;
use leptos::task::spawn_local;

use crate::api_client;
use crate::inference;
use crate::sync::local_storage;
use api::worker::{Engine, EngineChoice, FromWorker, ModelSource, Proposal, ToWorker};

/// Proposals shown by default: Ultralytics' confidence threshold (as `models` uses).
pub const DEFAULT_THRESHOLD: f32 = 0.25;
/// Lowest proposal score the worker returns; the editor's slider goes no lower.
pub const MIN_THRESHOLD: f32 = 0.05;

/// The student's view of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prelabels {
    pub proposals: Vec<Proposal>,
    pub model_source: ModelSource,
    pub inference_ms: f64,
    pub engine: Engine,
}

const ENGINE_KEY: &str = "distillery.prelabel-engine";

/// Where this browser runs students, as last chosen in the editor (the GPU when it has a
/// hardware adapter, until someone chooses).
pub fn remembered_engine() -> EngineChoice {
    local_storage()
        .and_then(|storage| storage.get_item(ENGINE_KEY).ok().flatten())
        .and_then(|name| EngineChoice::parse(&name))
        .unwrap_or_default()
}

/// Remembers where this browser runs students.
pub fn remember_engine(choice: EngineChoice) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(ENGINE_KEY, choice.as_str());
    }
}

/// The project's active student, if it has one.
pub async fn active_student(project_id: i64) -> Option<RegisteredModel> {
    api_client::list_models(project_id)
        .await
        .ok()?
        .into_iter()
        .find(|m| m.active)
}

/// Has the worker load `model` and run it once (in the background: an image on screen goes
/// first), so that the first image opened shows its proposals at warm speed.
pub async fn prepare(model: &RegisteredModel) -> Result<(), String> {
    let request = ToWorker::Prepare {
        id: 0,
        model_url: model.url.clone(),
        engine: remembered_engine(),
    };
    match inference::ask(request, false).await? {
        FromWorker::Prepared { .. } => Ok(()),
        other => Err(format!("unexpected answer from the model worker: {other:?}")),
    }
}

/// Runs the student on one image in the worker and reports its scores to the server.
pub async fn prelabel(
    project_id: i64,
    model: &RegisteredModel,
    image_id: i64,
    foreground: bool,
) -> Result<Prelabels, String> {
    let request = ToWorker::Detect {
        id: 0,
        model_url: model.url.clone(),
        image_id,
        image_url: format!("/api/images/{image_id}/file"),
        confidence: MIN_THRESHOLD,
        engine: remembered_engine(),
    };
    match inference::ask(request, foreground).await? {
        FromWorker::Detected {
            proposals,
            report,
            model_source,
            inference_ms,
            engine,
            ..
        } => {
            let report = PredictionReport {
                model_id: model.id,
                images: vec![report],
            };
            // On screen, the proposals are useful even if the server cannot take the scores now;
            // in the background, a refused report stops the loop (it would redo the same images).
            if let Err(failure) = api_client::report_predictions(project_id, &report).await
                && !foreground
            {
                return Err(format!("cannot report scores for image {image_id}: {failure}"));
            }
            Ok(Prelabels {
                proposals,
                model_source,
                inference_ms,
                engine,
            })
        }
        other => Err(format!("unexpected answer from the model worker: {other:?}")),
    }
}

/// Pre-labels the project's unscored images one at a time until there are none left or
/// `stop` is set; gives way whenever the image on screen needs the worker.
pub fn run_in_background(project_id: i64, model: RegisteredModel, stop: Arc<AtomicBool>) {
    spawn_local(async move {
        while !stop.load(Ordering::Relaxed) {
            let pending = match api_client::pending_predictions(project_id, model.id, 8).await {
                Ok(pending) if pending.image_ids.is_empty() => return,
                Ok(pending) => pending.image_ids,
                Err(_) => {
                    sleep(Duration::from_secs(10)).await;
                    continue;
                }
            };
            for image_id in pending {
                while inference::foreground_busy() && !stop.load(Ordering::Relaxed) {
                    sleep(Duration::from_millis(200)).await;
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(message) = prelabel(project_id, &model, image_id, false).await {
                    // A model this browser cannot run, or a crash: stop here; the page shows why.
                    leptos::logging::warn!("background pre-labeling stopped: {message}");
                    return;
                }
            }
        }
    });
}
