//! A training's state after each epoch, on disk, so a stopped training (cancelled, failed, or
//! killed with the server) continues where it stopped instead of starting over — Ultralytics'
//! `last.pt` / `best.pt`, in burn's own format (burnpack).
//!
//! One folder per saved epoch, `epoch-0007/`, holding the training weights (`last.bpk`), their
//! average (`ema.bpk`), the optimizer's moments (`optimizer.bpk`), the best epoch's weights
//! (`best.bpk`) and `state.json` — written last, so a folder without it is an unfinished write
//! and is ignored. The previous epoch's folder is removed once the new one is complete: a crash
//! at any moment leaves at least one whole checkpoint.
//!
//! Burn's records keep each parameter's id, which is what the optimizer's moments are keyed
//! by, so the restored network and optimizer fit together as they did before the stop.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use crate::ema::Ema;
use crate::trainer::{EpochReport, TrainConfig};
use crate::yolo::Yolo;

/// Bumped when the files change meaning; an older checkpoint is then refused, not misread.
const FORMAT: u32 = 1;

/// What a checkpoint records besides the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    format: u32,
    /// The settings a continuation must share (anything else would be a different training).
    classes: usize,
    imgsz: u32,
    batch: usize,
    epochs: usize,
    seed: u64,
    epochs_done: usize,
    best_epoch: usize,
    ema_updates: u64,
    /// Training time so far, so the figures after a resume count it.
    elapsed_seconds: f64,
    reports: Vec<EpochReport>,
}

/// A training as it stood after `epochs_done` epochs.
pub(crate) struct Saved {
    pub epochs_done: usize,
    /// The training weights (out of autodiff).
    pub model: Yolo,
    pub ema: Ema,
    pub optimizer: ModuleOptimizer,
    pub best_epoch: usize,
    /// The best epoch's averaged weights, batch-norm statistics measured, as validated.
    pub best: Yolo,
    pub elapsed_seconds: f64,
    pub reports: Vec<EpochReport>,
}

/// A checkpoint that cannot be written or used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("checkpoint {path}: {reason}")]
pub struct CheckpointError {
    pub path: String,
    pub reason: String,
}

impl CheckpointError {
    fn new(path: &Path, reason: impl ToString) -> Self {
        Self {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// How many epochs the newest complete checkpoint in `dir` holds, if there is one.
pub fn saved_epoch(dir: &Path) -> Option<usize> {
    newest(dir).map(|(epoch, _)| epoch)
}

/// The newest complete checkpoint folder in `dir` and its epoch.
fn newest(dir: &Path) -> Option<(usize, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let epoch = name.to_str()?.strip_prefix("epoch-")?.parse::<usize>().ok()?;
            entry.path().join("state.json").is_file().then(|| (epoch, entry.path()))
        })
        .max_by_key(|(epoch, _)| *epoch)
}

/// Writes `saved` as `dir`'s newest checkpoint and removes the older ones.
pub(crate) fn save(dir: &Path, config: &TrainConfig, saved: &Saved) -> Result<(), CheckpointError> {
    let folder = dir.join(format!("epoch-{:04}", saved.epochs_done));
    let fail = |reason: &dyn std::fmt::Display| CheckpointError::new(&folder, reason);
    // A folder left by an interrupted write of this same epoch.
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| fail(&e))?;
    }
    std::fs::create_dir_all(&folder).map_err(|e| fail(&e))?;
    let write = |name: &str, module: Yolo| module.save_file(folder.join(name)).map_err(|e| fail(&e));
    write("last.bpk", saved.model.clone())?;
    write("ema.bpk", saved.ema.model().clone())?;
    write("best.bpk", saved.best.clone())?;
    saved
        .optimizer
        .save(folder.join("optimizer.bpk"))
        .map_err(|e| fail(&e))?;
    let state = State {
        format: FORMAT,
        classes: saved.model.classes(),
        imgsz: config.imgsz,
        batch: config.batch,
        epochs: config.epochs,
        seed: config.seed,
        epochs_done: saved.epochs_done,
        best_epoch: saved.best_epoch,
        ema_updates: saved.ema.updates(),
        elapsed_seconds: saved.elapsed_seconds,
        reports: saved.reports.clone(),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| fail(&e))?;
    let partial = folder.join("state.json.partial");
    std::fs::write(&partial, json).map_err(|e| fail(&e))?;
    std::fs::rename(&partial, folder.join("state.json")).map_err(|e| fail(&e))?;

    for entry in std::fs::read_dir(dir).map_err(|e| fail(&e))?.filter_map(Result::ok) {
        let older = entry.file_name().to_str().is_some_and(|n| n.starts_with("epoch-")) && entry.path() != folder;
        if older {
            std::fs::remove_dir_all(entry.path()).map_err(|e| fail(&e))?;
        }
    }
    Ok(())
}

/// The newest checkpoint in `dir`, restored onto `device` with `optimizer` (built as the
/// training builds it) holding its moments; `None` when `dir` has none. A checkpoint of a
/// training with other settings is refused: continuing it would be a different training.
pub(crate) fn load(
    dir: &Path,
    config: &TrainConfig,
    classes: usize,
    optimizer: ModuleOptimizer,
    device: &Device,
) -> Result<Option<Saved>, CheckpointError> {
    let Some((_, folder)) = newest(dir) else {
        return Ok(None);
    };
    let fail = |reason: &dyn std::fmt::Display| CheckpointError::new(&folder, reason);
    let json = std::fs::read(folder.join("state.json")).map_err(|e| fail(&e))?;
    let state: State = serde_json::from_slice(&json).map_err(|e| fail(&e))?;
    if state.format != FORMAT {
        return Err(fail(&format!(
            "written in format {}, this version reads {FORMAT}",
            state.format
        )));
    }
    let theirs = (state.classes, state.imgsz, state.batch, state.epochs, state.seed);
    let ours = (classes, config.imgsz, config.batch, config.epochs, config.seed);
    if theirs != ours {
        return Err(fail(&format!(
            "it was written by a training of {} classes at {} px, batch {}, {} epochs, seed {}; this one has {} \
             classes at {} px, batch {}, {} epochs, seed {}",
            theirs.0, theirs.1, theirs.2, theirs.3, theirs.4, ours.0, ours.1, ours.2, ours.3, ours.4
        )));
    }
    let read = |name: &str| {
        let record = ModuleRecord::load(folder.join(name)).map_err(|e| fail(&e))?;
        Yolo::new(classes, device).try_load_record(record).map_err(|e| fail(&e))
    };
    let optimizer = optimizer.load(folder.join("optimizer.bpk")).map_err(|e| fail(&e))?;
    Ok(Some(Saved {
        epochs_done: state.epochs_done,
        model: read("last.bpk")?,
        ema: Ema::restore(read("ema.bpk")?, state.ema_updates),
        optimizer,
        best_epoch: state.best_epoch,
        // Loading restores tensors, not modes: the best weights are validated and exported.
        best: read("best.bpk")?.valid(),
        elapsed_seconds: state.elapsed_seconds,
        reports: state.reports,
    }))
}
