//! The training loop, Ultralytics' `DetectionTrainer` with its defaults: AdamW (what
//! `optimizer=auto` picks for short trainings) at `0.002 · 5 / (4 + classes)`, a warm-up of three
//! epochs (at least 100 steps, or a quarter of a shorter training) ramping the rate and the
//! gradient accumulation towards a nominal batch of 64, then a cosine decay to 1 % of the rate;
//! mosaic augmentation until the last `close_mosaic` epochs; EMA weights validated after every
//! epoch with yolo val's settings; the best epoch by Ultralytics' fitness (0.1 · mAP50 + 0.9 ·
//! mAP50-95) kept; early stopping after `patience` epochs without improvement; gradients clipped to
//! a global norm of 10 before each step. Ultralytics' momentum and bias-rate warm-ups do not apply
//! here: with `optimizer=auto` it sets `warmup_bias_lr` to 0 for AdamW, and its momentum warm-up
//! only touches optimizers with a `momentum` setting (SGD), so neither is reproduced. Batches are
//! augmented on another thread while the network steps. With a checkpoint folder, every epoch is
//! saved there (`checkpoint`) and a training that finds a checkpoint continues from it.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams};
pub use burn::prelude::Device;
use burn::prelude::*;
use fastrand::Rng;
use rayon::prelude::*;

use crate::assign::Target;
use crate::augment::{AugmentConfig, Sample, augment, fit_long_side};
use crate::checkpoint::{self, CheckpointError, Saved};
use crate::clip::{MAX_GRADIENT_NORM, clip_global_norm};
use crate::ema::Ema;
use crate::evaluate::{GroundTruth, Prediction};
use crate::loss::{LossConfig, LossParts, detection_loss};
use crate::quality::{Evaluation, evaluate};
use crate::yolo::Yolo;

/// yolo val's confidence and NMS IoU: mAP counts every ranked detection.
pub const VALIDATION_CONFIDENCE: f32 = 0.001;
pub const VALIDATION_IOU: f32 = 0.7;

/// How a training runs (Ultralytics' names and defaults where it has them).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    /// Square input side, a multiple of 32.
    pub imgsz: u32,
    /// Starting learning rate; `None` for Ultralytics' automatic choice.
    pub lr0: Option<f64>,
    /// Final learning rate as a fraction of `lr0`.
    pub lrf: f64,
    pub weight_decay: f64,
    pub warmup_epochs: f64,
    /// Mosaic off for this many final epochs.
    pub close_mosaic: usize,
    /// Stop after this many epochs without a better fitness.
    pub patience: usize,
    /// Nominal batch size that gradients are accumulated to.
    pub nbs: usize,
    pub seed: u64,
    pub augment: AugmentConfig,
    pub loss: LossConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch: 16,
            imgsz: 320,
            lr0: None,
            lrf: 0.01,
            weight_decay: 5e-4,
            warmup_epochs: 3.0,
            close_mosaic: 10,
            patience: 100,
            nbs: 64,
            seed: 0,
            augment: AugmentConfig::default(),
            loss: LossConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The starting rate: `lr0`, or Ultralytics' AdamW fit for `classes`.
    pub fn learning_rate(&self, classes: usize) -> f64 {
        self.lr0.unwrap_or(0.002 * 5.0 / (4.0 + classes as f64))
    }
}

/// What the network learns from: images with their boxes (corners in image pixels), split.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub class_names: Vec<String>,
}

/// Where a running training is.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        parts: LossParts,
    },
    Epoch(&'a EpochReport),
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    /// From 1.
    pub epoch: usize,
    pub epochs: usize,
    /// Mean training loss parts over the epoch's batches.
    pub loss: LossParts,
    /// The rate at the epoch's last step.
    pub learning_rate: f64,
    pub images_per_second: f64,
    pub map50: f64,
    pub map50_95: f64,
    pub precision: f64,
    pub recall: f64,
    /// Whether this epoch's weights are the best so far.
    pub best: bool,
    pub elapsed_seconds: f64,
    /// Seconds left at this pace.
    pub eta_seconds: f64,
}

/// Ultralytics' fitness: mostly mAP50-95.
pub fn fitness(map50: f64, map50_95: f64) -> f64 {
    0.1 * map50 + 0.9 * map50_95
}

/// A finished training.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The best epoch's averaged weights, out of autodiff.
    pub model: Yolo,
    pub best_epoch: usize,
    /// Its validation.
    pub evaluation: Evaluation,
    pub epochs: Vec<EpochReport>,
    /// Whether early stopping ended it before the last epoch.
    pub stopped_early: bool,
    /// The epochs a checkpoint held when this run started (0: it started afresh).
    pub resumed_after: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error("there are no training images")]
    NoTrainingImages,
    #[error("there are no validation images")]
    NoValidationImages,
    #[error("the training images have no boxes: there is nothing to learn")]
    NoBoxes,
    #[error("the image size must be a positive multiple of 32, not {0}")]
    ImageSize(u32),
    #[error("a box has class {class}, but the project has {classes} classes")]
    UnknownClass { class: usize, classes: usize },
    #[error("the loss became {parts:?} at epoch {epoch}, batch {batch}: training diverged")]
    NotFinite {
        epoch: usize,
        batch: usize,
        parts: LossParts,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cancelled")]
    Cancelled,
}

/// Trains from `start` (fine-tuning) or from scratch, reporting to `progress`, which stops the
/// training by returning `Break`. With `checkpoints`, each finished epoch is saved in that
/// folder, and a checkpoint already there is continued (`start` is then ignored).
pub fn train(
    config: &TrainConfig,
    data: &TrainingData,
    start: Option<Yolo>,
    device: &Device,
    checkpoints: Option<&Path>,
    mut progress: impl FnMut(Progress<'_>) -> ControlFlow<()>,
) -> Result<Trained, TrainError> {
    let classes = data.class_names.len();
    check(config, data, classes)?;
    let pool: Vec<Sample> = data.train.iter().map(|s| fit_long_side(s, config.imgsz)).collect();
    let validation = Validation::new(&data.val, config.imgsz);
    let calibration = calibration_batches(config, &pool);

    let training_device = device.clone().autodiff();
    let batches = pool.len().div_ceil(config.batch);
    let full_accumulation = (config.nbs as f64 / config.batch as f64).round().max(1.0);
    let weight_decay = config.weight_decay * config.batch as f64 * full_accumulation / config.nbs as f64;
    let adam = |decay: f64| {
        AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(decay as f32)
    };
    // Ultralytics decays convolution weights only, not biases or batch-norm scales and shifts.
    let optimizer = adam(weight_decay).init().with_group(
        ParamGroup::from_any_predicates(vec!["bias", "gamma", "beta"]),
        adam(0.0).build(),
        None,
    );
    let saved = match checkpoints {
        Some(dir) => checkpoint::load(dir, config, classes, optimizer.clone(), device)?,
        None => None,
    };
    let resumed_after = saved.as_ref().map_or(0, |s| s.epochs_done);
    let (mut model, mut ema, mut optimizer, mut reports, mut best, elapsed_before) = match saved {
        Some(saved) => {
            // The best epoch's figures are measured again: the weights are its own, so they are too.
            let evaluation = validation.run(&saved.best, classes);
            let score = fitness(evaluation.map50, evaluation.map50_95);
            let best = Some((score, saved.best_epoch, saved.best, evaluation));
            let model = saved.model.to_device(&training_device).train();
            (
                model,
                saved.ema,
                saved.optimizer,
                saved.reports,
                best,
                saved.elapsed_seconds,
            )
        }
        None => {
            let model = start
                .unwrap_or_else(|| Yolo::new(classes, device))
                .to_device(&training_device)
                .train();
            let ema = Ema::new(&model);
            (model, ema, optimizer, Vec::new(), None, 0.0)
        }
    };
    // Gradients are accumulated within a run; a resumed one starts with none pending.
    let mut accumulator = GradientsAccumulator::new();
    let mut accumulated = 0usize;

    let lr0 = config.learning_rate(classes);
    // Ultralytics warms up for at least 100 steps; a training shorter than 400 steps warms up
    // for a quarter of it instead, or it would never leave the warm-up.
    let warmup_steps = if config.warmup_epochs > 0.0 {
        let floor = 100.min(batches * config.epochs / 4);
        ((config.warmup_epochs * batches as f64).round() as usize).max(floor)
    } else {
        0
    };
    let started = Instant::now();
    let elapsed = || elapsed_before + started.elapsed().as_secs_f64();
    let mut stopped_early = false;

    for epoch in resumed_after..config.epochs {
        let epoch_started = Instant::now();
        let mosaic = epoch + config.close_mosaic < config.epochs;
        let decayed = lr0 * cosine(epoch, config.epochs, config.lrf);
        let mut learning_rate = decayed;
        let mut sums = LossParts::default();
        let mut seen = 0usize;

        let (sender, receiver) = mpsc::sync_channel::<Batch>(2);
        let outcome = std::thread::scope(|scope| {
            let pool = &pool;
            scope.spawn(move || {
                let mut rng = Rng::with_seed(config.seed.wrapping_add(epoch as u64));
                let mut order: Vec<usize> = (0..pool.len()).collect();
                rng.shuffle(&mut order);
                for chunk in order.chunks(config.batch) {
                    let batch = Batch::augmented(config, pool, chunk, mosaic, &mut rng);
                    if sender.send(batch).is_err() {
                        return; // the loop stopped early
                    }
                }
            });
            // `into_iter` moves the receiver in here, so a stop (cancel, NaN) drops it and
            // unblocks the augmenting thread, which the scope waits for before it returns.
            for (i, batch) in receiver.into_iter().enumerate() {
                let step = i + batches * epoch;
                let accumulate = if step <= warmup_steps && warmup_steps > 0 {
                    let t = step as f64 / warmup_steps as f64;
                    learning_rate = decayed * t;
                    (1.0 + t * (full_accumulation - 1.0)).round().max(1.0) as usize
                } else {
                    learning_rate = decayed;
                    full_accumulation as usize
                };
                model.set_batch_norm_momentum(batch_norm_momentum(step));
                let images = batch.images(&training_device, config.imgsz);
                let loss = detection_loss(&config.loss, model.forward(images), classes, &batch.targets);
                if !loss.parts.is_finite() {
                    return Err(TrainError::NotFinite {
                        epoch: epoch + 1,
                        batch: i + 1,
                        parts: loss.parts,
                    });
                }
                let grads = GradientsParams::from_grads(loss.total.backward(), &model);
                accumulator.accumulate(&model, grads);
                accumulated += 1;
                if accumulated >= accumulate {
                    let (grads, _) = clip_global_norm(&model, accumulator.grads(), MAX_GRADIENT_NORM);
                    model = optimizer.step(learning_rate, model.clone(), grads);
                    accumulated = 0;
                    ema.update(&model);
                }
                let n = batch.targets.len();
                seen += n;
                sums.box_loss += loss.parts.box_loss * n as f32;
                sums.class_loss += loss.parts.class_loss * n as f32;
                sums.dfl_loss += loss.parts.dfl_loss * n as f32;
                let report = Progress::Batch {
                    epoch: epoch + 1,
                    batch: i + 1,
                    batches,
                    parts: loss.parts,
                };
                if progress(report).is_break() {
                    return Err(TrainError::Cancelled);
                }
            }
            Ok(())
        });
        outcome?;

        let train_seconds = epoch_started.elapsed().as_secs_f64();
        let candidate = with_fresh_statistics(ema.model(), &calibration, &training_device);
        let evaluation = validation.run(&candidate, classes);
        let score = fitness(evaluation.map50, evaluation.map50_95);
        let is_best = best.as_ref().is_none_or(|(f, ..)| score > *f);
        if is_best {
            best = Some((score, epoch + 1, candidate, evaluation.clone()));
        }
        let elapsed = elapsed();
        let per_epoch = elapsed / (epoch + 1) as f64;
        let mean = |v: f32| if seen == 0 { 0.0 } else { v / seen as f32 };
        let report = EpochReport {
            epoch: epoch + 1,
            epochs: config.epochs,
            loss: LossParts {
                box_loss: mean(sums.box_loss),
                class_loss: mean(sums.class_loss),
                dfl_loss: mean(sums.dfl_loss),
            },
            learning_rate,
            images_per_second: seen as f64 / train_seconds.max(1e-9),
            map50: evaluation.map50,
            map50_95: evaluation.map50_95,
            precision: evaluation.precision,
            recall: evaluation.recall,
            best: is_best,
            elapsed_seconds: elapsed,
            eta_seconds: per_epoch * (config.epochs - epoch - 1) as f64,
        };
        reports.push(report.clone());
        if let (Some(dir), Some((_, best_epoch, best_model, _))) = (checkpoints, &best) {
            let saved = Saved {
                epochs_done: epoch + 1,
                model: model.valid(),
                ema: ema.clone(),
                optimizer: optimizer.clone(),
                best_epoch: *best_epoch,
                best: best_model.clone(),
                elapsed_seconds: elapsed,
                reports: reports.clone(),
            };
            checkpoint::save(dir, config, &saved)?;
        }
        if progress(Progress::Epoch(&report)).is_break() {
            return Err(TrainError::Cancelled);
        }
        let best_epoch = best.as_ref().map_or(0, |b| b.1);
        if epoch + 1 - best_epoch >= config.patience && epoch + 1 < config.epochs {
            stopped_early = true;
            break;
        }
    }

    let (_, best_epoch, model, evaluation) = best.ok_or(TrainError::NoTrainingImages)?;
    Ok(Trained {
        model,
        best_epoch,
        evaluation,
        epochs: reports,
        stopped_early,
        resumed_after,
    })
}

fn check(config: &TrainConfig, data: &TrainingData, classes: usize) -> Result<(), TrainError> {
    if config.imgsz == 0 || !config.imgsz.is_multiple_of(32) {
        return Err(TrainError::ImageSize(config.imgsz));
    }
    if data.train.is_empty() {
        return Err(TrainError::NoTrainingImages);
    }
    if data.val.is_empty() {
        return Err(TrainError::NoValidationImages);
    }
    if data.train.iter().all(|s| s.targets.is_empty()) {
        return Err(TrainError::NoBoxes);
    }
    let all = data.train.iter().chain(&data.val).flat_map(|s| &s.targets);
    if let Some(t) = all.into_iter().find(|t| t.class >= classes) {
        return Err(TrainError::UnknownClass {
            class: t.class,
            classes,
        });
    }
    Ok(())
}

/// Images the batch-norm statistics are re-estimated on before each validation.
const CALIBRATION_IMAGES: usize = 32;

/// The first training images, unaugmented (centred on the input, as the letterbox puts them),
/// in batches: what the averaged weights' batch-norm statistics are measured on.
fn calibration_batches(config: &TrainConfig, pool: &[Sample]) -> Vec<Batch> {
    let plain = AugmentConfig {
        hsv: [0.0; 3],
        translate: 0.0,
        scale: 0.0,
        flip: 0.0,
    };
    let mut rng = Rng::with_seed(config.seed);
    let indices: Vec<usize> = (0..pool.len().min(CALIBRATION_IMAGES)).collect();
    let calibration = TrainConfig {
        augment: plain,
        ..config.clone()
    };
    indices
        .chunks(config.batch.max(1))
        .map(|chunk| Batch::augmented(&calibration, pool, chunk, false, &mut rng))
        .collect()
}

/// `model` with every batch norm's running statistics measured anew on `batches` (a cumulative
/// average, no gradients): the averaged weights never ran a batch themselves, and statistics
/// gathered while the weights moved lag behind them, which after a short training is the
/// difference between a network that detects and one that validates at mAP 0.
fn with_fresh_statistics(model: &Yolo, batches: &[Batch], training_device: &Device) -> Yolo {
    let imgsz = batches.first().map_or(0, |b| {
        ((b.pixels.len() / 3 / b.targets.len().max(1)) as f64).sqrt() as u32
    });
    // `train()` gives the copy its own running statistics (the average's stay untouched).
    let mut measuring = model.clone().to_device(training_device).train();
    for (k, batch) in batches.iter().enumerate() {
        measuring.set_batch_norm_momentum(1.0 / (k + 1) as f64);
        let _ = measuring.forward(batch.images(training_device, imgsz));
    }
    measuring.set_batch_norm_momentum(BATCH_NORM_MOMENTUM);
    measuring.valid()
}

/// Ultralytics' batch-norm momentum.
const BATCH_NORM_MOMENTUM: f64 = 0.03;

/// How much of a batch's statistics each batch norm's running statistics take at `step`:
/// Ultralytics' 0.03 — except for the first 33 steps, which take a cumulative average
/// (`1 / (step + 1)`), so the statistics validation runs with match the network's even after a
/// short training. With 0.03 from the start the running variance keeps most of its initial 1
/// for a hundred steps and an otherwise well-trained network validates at mAP 0.
pub fn batch_norm_momentum(step: usize) -> f64 {
    (1.0 / (step + 1) as f64).max(BATCH_NORM_MOMENTUM)
}

/// Ultralytics' `one_cycle`: from 1 at the first epoch to `lrf` at the last, along a cosine.
pub fn cosine(epoch: usize, epochs: usize, lrf: f64) -> f64 {
    let x = epoch as f64 / epochs.max(1) as f64;
    ((1.0 - (x * std::f64::consts::PI).cos()) / 2.0) * (lrf - 1.0) + 1.0
}

/// Augmented images, `[B, 3, S, S]` in 0..1, and their targets in input pixels.
struct Batch {
    pixels: Vec<f32>,
    targets: Vec<Vec<Target>>,
}

impl Batch {
    fn augmented(config: &TrainConfig, pool: &[Sample], indices: &[usize], mosaic: bool, rng: &mut Rng) -> Self {
        // Each image draws from its own stream, seeded from the batch's: the images are augmented
        // in parallel and the batch is still the same for the same seed.
        let seeded: Vec<(usize, u64)> = indices.iter().map(|&index| (index, rng.u64(..))).collect();
        let samples: Vec<Sample> = seeded
            .into_par_iter()
            .map(|(index, seed)| {
                let mut rng = Rng::with_seed(seed);
                augment(&config.augment, pool, index, config.imgsz, mosaic, &mut rng)
            })
            .collect();
        let side = config.imgsz as usize;
        let plane = side * side;
        let mut pixels = vec![0.0f32; indices.len() * 3 * plane];
        // Interleaved RGB bytes to planar 0..1 floats, one image per task.
        pixels
            .par_chunks_mut(3 * plane)
            .zip(&samples)
            .for_each(|(planes, sample)| {
                for (i, pixel) in sample.image.pixels().enumerate() {
                    for c in 0..3 {
                        planes[c * plane + i] = pixel[c] as f32 / 255.0;
                    }
                }
            });
        let targets = samples.into_iter().map(|s| s.targets).collect();
        Self { pixels, targets }
    }

    fn images(&self, device: &Device, imgsz: u32) -> Tensor<4> {
        let side = imgsz as usize;
        Tensor::from_data(
            TensorData::new(self.pixels.clone(), [self.targets.len(), 3, side, side]),
            device,
        )
    }
}

/// The validation images letterboxed once, and their boxes, for yolo val's figures.
struct Validation {
    inputs: Vec<(Vec<f32>, models::Letterbox, u32, u32)>,
    truths: Vec<GroundTruth>,
    imgsz: u32,
}

impl Validation {
    /// Images per forward pass.
    const BATCH: usize = 8;

    fn new(samples: &[Sample], imgsz: u32) -> Self {
        let mut truths = Vec::new();
        let inputs = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (w, h) = s.image.dimensions();
                let pixels = models::Pixels {
                    data: s.image.as_raw(),
                    width_px: w,
                    height_px: h,
                    channels: 3,
                };
                truths.extend(s.targets.iter().map(|t| GroundTruth {
                    image: i,
                    class_index: t.class,
                    bbox: t.xyxy,
                }));
                let (tensor, letterbox) = models::preprocess::input_tensor(pixels, imgsz);
                (tensor, letterbox, w, h)
            })
            .collect();
        Self { inputs, truths, imgsz }
    }

    fn run(&self, model: &Yolo, classes: usize) -> Evaluation {
        let device = model_device(model);
        let side = self.imgsz as usize;
        let layout = models::OutputLayout::Ultralytics {
            classes,
            anchors: crate::yolo::anchor_count(self.imgsz),
        };
        let mut predictions = Vec::new();
        for (start, chunk) in self.inputs.chunks(Self::BATCH).enumerate() {
            let data: Vec<f32> = chunk.iter().flat_map(|c| c.0.iter().copied()).collect();
            let images = Tensor::<4>::from_data(TensorData::new(data, [chunk.len(), 3, side, side]), &device);
            let output = model.decode(model.forward(images));
            let values = output.into_data().try_to_vec::<f32>().unwrap_or_default();
            let per_image = values.len() / chunk.len().max(1);
            for (j, (_, letterbox, w, h)) in chunk.iter().enumerate() {
                let image = start * Self::BATCH + j;
                let pixels = models::Pixels {
                    data: &[],
                    width_px: *w,
                    height_px: *h,
                    channels: 3,
                };
                let output = &values[j * per_image..(j + 1) * per_image];
                let found = models::postprocess(
                    layout,
                    output,
                    *letterbox,
                    pixels,
                    VALIDATION_CONFIDENCE,
                    VALIDATION_IOU,
                );
                predictions.extend(found.detections.into_iter().map(|d| Prediction {
                    image,
                    class_index: d.class_index,
                    score: d.score,
                    bbox: d.bbox,
                }));
            }
        }
        evaluate(&self.truths, &predictions, classes)
    }
}

fn model_device(model: &Yolo) -> Device {
    model.devices().into_iter().next().unwrap_or_else(Device::flex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_augmented_in_parallel_is_the_same_for_the_same_seed() {
        // Distinct images (a gradient each), so a swapped image or stream would show.
        let pool: Vec<Sample> = (0..6u8)
            .map(|k| Sample {
                image: image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([k * 40, x as u8 * 6, y as u8 * 8])),
                targets: vec![Target {
                    class: usize::from(k % 2),
                    xyxy: [4.0 + f32::from(k), 5.0, 30.0, 25.0],
                }],
            })
            .collect();
        let config = TrainConfig {
            imgsz: 32,
            ..TrainConfig::default()
        };
        let batch = |seed: u64| Batch::augmented(&config, &pool, &[0, 3, 5, 1], true, &mut Rng::with_seed(seed));
        let (a, b, other) = (batch(7), batch(7), batch(8));
        assert_eq!(a.pixels, b.pixels);
        assert_eq!(a.targets, b.targets);
        assert_eq!(a.pixels.len(), 4 * 3 * 32 * 32);
        assert_ne!(a.pixels, other.pixels);
    }

    #[test]
    fn batch_norms_average_the_first_batches_then_follow_at_3_percent() {
        assert_eq!(batch_norm_momentum(0), 1.0);
        assert_eq!(batch_norm_momentum(3), 0.25);
        assert_eq!(batch_norm_momentum(32), 1.0 / 33.0);
        assert_eq!(batch_norm_momentum(40), 0.03);
    }

    #[test]
    fn cosine_runs_from_one_to_lrf() {
        assert!((cosine(0, 10, 0.01) - 1.0).abs() < 1e-12);
        assert!((cosine(5, 10, 0.01) - 0.505).abs() < 1e-12);
        assert!((cosine(10, 10, 0.01) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn the_automatic_rate_is_ultralytics_adamw_fit() {
        // 80 classes: 0.002 · 5 / 84 ≈ 0.000119 (Ultralytics rounds to 0.000119).
        assert!((TrainConfig::default().learning_rate(80) - 0.000119).abs() < 1e-6);
        assert!((TrainConfig::default().learning_rate(4) - 0.00125).abs() < 1e-12);
    }

    #[test]
    fn bad_data_is_refused_with_the_reason() {
        let config = TrainConfig::default();
        let device = Device::flex();
        let empty = TrainingData::default();
        let refuse = |data: &TrainingData, config: &TrainConfig| {
            train(config, data, None, &device, None, |_| ControlFlow::Continue(())).err()
        };
        assert_eq!(refuse(&empty, &config), Some(TrainError::NoTrainingImages));
        let image = image::RgbImage::new(64, 64);
        let unlabeled = Sample {
            image: image.clone(),
            targets: vec![],
        };
        let data = TrainingData {
            train: vec![unlabeled.clone()],
            val: vec![unlabeled.clone()],
            class_names: vec!["a".into()],
        };
        assert_eq!(refuse(&data, &config), Some(TrainError::NoBoxes));
        let wrong = Sample {
            image,
            targets: vec![Target {
                class: 3,
                xyxy: [1.0, 1.0, 9.0, 9.0],
            }],
        };
        let data = TrainingData {
            train: vec![wrong],
            ..data
        };
        assert_eq!(
            refuse(&data, &config),
            Some(TrainError::UnknownClass { class: 3, classes: 1 })
        );
        let odd = TrainConfig { imgsz: 100, ..config };
        assert_eq!(refuse(&data, &odd), Some(TrainError::ImageSize(100)));
    }
}
