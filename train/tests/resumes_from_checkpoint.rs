//! A training stopped after an epoch and started again on its checkpoint folder ends where the
//! same training run without a stop ends: the same epoch figures before the stop (restored, not
//! recomputed), and the same weights after it — which only holds if the network, its average,
//! the optimizer's moments, the schedule and the best epoch all came back.

use std::ops::ControlFlow;

use burn::module::Module;
use burn::prelude::*;
use image::{Rgb, RgbImage};
use train::assign::Target;
use train::augment::Sample;
use train::checkpoint::saved_epoch;
use train::trainer::{Progress, TrainConfig, TrainError, Trained, TrainingData, train};
use train::yolo::Yolo;

const IMGSZ: u32 = 64;

/// A light square on a dark background, somewhere different in each image.
fn sample(i: u32) -> Sample {
    let (x0, y0) = (4 + 9 * (i % 4), 6 + 7 * (i % 3));
    let mut image = RgbImage::from_pixel(IMGSZ, IMGSZ, Rgb([20, 20, 30]));
    for y in y0..y0 + 20 {
        for x in x0..x0 + 20 {
            image.put_pixel(x, y, Rgb([230, 220, 90]));
        }
    }
    let targets = vec![Target {
        class: 0,
        xyxy: [x0 as f32, y0 as f32, (x0 + 20) as f32, (y0 + 20) as f32],
    }];
    Sample { image, targets }
}

fn data() -> TrainingData {
    TrainingData {
        train: (0..4).map(sample).collect(),
        val: (4..6).map(sample).collect(),
        class_names: vec!["square".into()],
    }
}

fn config() -> TrainConfig {
    // The nominal batch equals the batch, so every step updates the weights: no gradients are
    // pending at an epoch's end, which is when a checkpoint is written.
    TrainConfig {
        epochs: 3,
        batch: 2,
        nbs: 2,
        imgsz: IMGSZ,
        close_mosaic: 1,
        ..TrainConfig::default()
    }
}

/// The trained network's raw output on a fixed image.
fn output(trained: &Trained) -> Vec<f32> {
    let device = Device::flex();
    let images = Tensor::<4>::ones([1, 3, IMGSZ as usize, IMGSZ as usize], &device) * 0.5;
    let model = trained.model.clone().to_device(&device);
    let decoded = model.decode(model.forward(images));
    decoded.into_data().try_to_vec::<f32>().unwrap_or_default()
}

fn continue_always(_: Progress<'_>) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn a_stopped_training_continues_from_its_checkpoint_as_if_never_stopped() -> anyhow::Result<()> {
    let device = Device::flex();
    let start = Yolo::new(1, &device);
    let (data, config) = (data(), config());

    let whole_dir = tempfile::tempdir()?;
    let whole = train(
        &config,
        &data,
        Some(start.clone()),
        &device,
        Some(whole_dir.path()),
        continue_always,
    )?;

    let dir = tempfile::tempdir()?;
    let stopped = train(
        &config,
        &data,
        Some(start),
        &device,
        Some(dir.path()),
        |progress| match progress {
            Progress::Epoch(report) if report.epoch == 2 => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        },
    );
    assert!(matches!(stopped, Err(TrainError::Cancelled)));
    assert_eq!(saved_epoch(dir.path()), Some(2));
    let folders = std::fs::read_dir(dir.path())?.count();
    assert_eq!(folders, 1, "only the newest checkpoint is kept");

    // Another random start: a checkpoint, when there is one, is what the training continues.
    let other_start = Yolo::new(1, &device);
    let mut epochs_run = Vec::new();
    let resumed = train(
        &config,
        &data,
        Some(other_start),
        &device,
        Some(dir.path()),
        |progress| {
            if let Progress::Epoch(report) = progress {
                epochs_run.push(report.epoch);
            }
            ControlFlow::Continue(())
        },
    )?;
    assert_eq!(resumed.resumed_after, 2);
    assert_eq!(epochs_run, vec![3], "only the epoch after the checkpoint runs again");
    assert_eq!(resumed.epochs.len(), 3);
    for (a, b) in whole.epochs.iter().zip(&resumed.epochs).take(2) {
        assert_eq!((a.epoch, a.loss, a.map50, a.best), (b.epoch, b.loss, b.map50, b.best));
    }
    let (a, b) = (&whole.epochs[2], &resumed.epochs[2]);
    assert!(
        (a.loss.box_loss - b.loss.box_loss).abs() < 1e-4,
        "{:?} vs {:?}",
        a.loss,
        b.loss
    );
    assert!(
        (a.loss.class_loss - b.loss.class_loss).abs() < 1e-4,
        "{:?} vs {:?}",
        a.loss,
        b.loss
    );
    assert_eq!(whole.best_epoch, resumed.best_epoch);
    let (a, b) = (output(&whole), output(&resumed));
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "the resumed training's weights differ by up to {worst}");
    Ok(())
}

#[test]
fn a_checkpoint_of_other_settings_is_refused() -> anyhow::Result<()> {
    let device = Device::flex();
    let dir = tempfile::tempdir()?;
    let short = TrainConfig {
        epochs: 1,
        close_mosaic: 0,
        ..config()
    };
    train(&short, &data(), None, &device, Some(dir.path()), continue_always)?;
    assert_eq!(saved_epoch(dir.path()), Some(1));
    let longer = TrainConfig { epochs: 2, ..short };
    let refused = train(&longer, &data(), None, &device, Some(dir.path()), continue_always);
    let Err(TrainError::Checkpoint(error)) = refused else {
        anyhow::bail!("expected a refused checkpoint, got {refused:?}");
    };
    assert!(error.reason.contains("1 epochs"), "{error}");
    assert!(
        error
            .reason
            .contains("this one has 1 classes at 64 px, batch 2, 2 epochs"),
        "{error}"
    );
    Ok(())
}

/// Stopping at the first batch of an epoch returns at once, while the augmenting thread still
/// has batches to hand over (it once waited for a receiver that was never dropped).
#[test]
fn a_stop_in_the_middle_of_an_epoch_returns() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let data = TrainingData {
            train: (0..16).map(sample).collect(),
            ..data()
        };
        let stopped = train(
            &config(),
            &data,
            None,
            &Device::flex(),
            None,
            |progress| match progress {
                Progress::Batch { .. } => ControlFlow::Break(()),
                Progress::Epoch(_) => ControlFlow::Continue(()),
            },
        );
        let _ = done.send(matches!(stopped, Err(TrainError::Cancelled)));
    });
    let cancelled = finished.recv_timeout(std::time::Duration::from_secs(120));
    assert_eq!(cancelled, Ok(true), "the training did not return after the stop");
}
