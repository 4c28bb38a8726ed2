//! `cargo run --release -p train --example bench_train -- [DATA_DIR] [EPOCHS] [BATCH] [IMGSZ] [TRAIN_IMAGES]`
//! (what `cargo xtask bench-train` runs): trains the student from scratch on a YOLO data set's
//! train split (the shapes set of the reference models when DATA_DIR is empty), validates on its
//! val split every epoch, then scores the exported best epoch on the test split with tract.
//! Prints one line per epoch and a `RESULT` line with images/s and the seconds at which val mAP50
//! first reached 0.5 and 0.9. Then the anchor: when `ULTRALYTICS_PYTHON` names a Python with the
//! `ultralytics` wheel, Ultralytics trains YOLOv8n on the same images with the same settings in
//! this run (`ultralytics_train.py`) and both are printed side by side; otherwise, for the shapes
//! set, Ultralytics' recorded run. `NBS=` overrides the nominal batch; `DEVICE=gpu` trains both on
//! the CUDA GPU (ours through the `libtorch` feature, Ultralytics on device 0); `DEVICE=flex`
//! trains ours on burn's CPU backend where the `libtorch` feature made libtorch the CPU's.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use train::device::{self, Accelerator};
use train::trainer::{Progress, TrainConfig, TrainingData, train};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match args.first().map(String::as_str) {
        None | Some("") => models::conformance::reference_models_dir().join("shapes"),
        Some(dir) => PathBuf::from(dir),
    };
    let number = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (epochs, batch, imgsz, limit) = (
        number(1, 30),
        number(2, 16),
        number(3, 320) as u32,
        number(4, usize::MAX),
    );

    let mut training = train::folder::load_split(&root, "train")?;
    training.truncate(limit);
    let data = TrainingData {
        train: training,
        val: train::folder::load_split(&root, "val")?,
        class_names: class_names(&root)?,
    };
    let test = train::folder::load_split(&root, "test")?;
    let name = std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into());
    let (accelerator, device) = match name.as_str() {
        // burn's own CPU backend where `cpu` means libtorch's (the `libtorch` feature).
        "flex" => (Accelerator::Cpu, device::Device::flex()),
        _ => {
            let accelerator = Accelerator::parse(&name).ok_or(format!("DEVICE is cpu or gpu, not {name:?}"))?;
            (accelerator, device::select(accelerator).map_err(|e| e.to_string())?)
        }
    };
    let runs_on = if name == "flex" {
        "CPU (burn flex)"
    } else {
        device::describe(accelerator)
    };
    let config = TrainConfig {
        epochs,
        batch,
        imgsz,
        close_mosaic: 10.min(epochs / 3),
        nbs: std::env::var("NBS").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..TrainConfig::default()
    };
    println!(
        "training {} images ({} val, {} classes) for {epochs} epochs, batch {batch}, {imgsz}², {} threads, on {}",
        data.train.len(),
        data.val.len(),
        data.class_names.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        runs_on
    );
    let started = Instant::now();
    let (mut reached_50, mut reached_90) = (None, None);
    let trained = train(&config, &data, None, &device, None, |progress| {
        if let Progress::Epoch(e) = progress {
            println!(
                "epoch {:>3}/{} box {:.3} cls {:.3} dfl {:.3} lr {:.2e} mAP50 {:.4} mAP50-95 {:.4} {:.2} img/s {:.0}s",
                e.epoch,
                e.epochs,
                e.loss.box_loss,
                e.loss.class_loss,
                e.loss.dfl_loss,
                e.learning_rate,
                e.map50,
                e.map50_95,
                e.images_per_second,
                e.elapsed_seconds
            );
            if e.map50 >= 0.5 && reached_50.is_none() {
                reached_50 = Some(e.elapsed_seconds);
            }
            if e.map50 >= 0.9 && reached_90.is_none() {
                reached_90 = Some(e.elapsed_seconds);
            }
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let onnx = train::export::export_onnx(&trained.model, imgsz, &data.class_names)?;
    let detector = models::Detector::load(&onnx).map_err(|e| e.to_string())?;
    let test_map50 = test_map50(&detector, &test, data.class_names.len())?;
    // All images over all training time (the harmonic mean of the epochs' rates), as
    // `ultralytics_train.py` counts it.
    let images_per_second = trained.epochs.len() as f64
        / trained
            .epochs
            .iter()
            .map(|e| 1.0 / e.images_per_second.max(1e-9))
            .sum::<f64>()
            .max(1e-9);
    let show = |t: Option<f64>| t.map_or("never".to_string(), |s| format!("{s:.0}"));
    println!(
        "RESULT images_per_second={images_per_second:.2} seconds={seconds:.0} best_epoch={} val_map50={:.4} val_map50_95={:.4} test_map50={test_map50:.4} to_map50_0.5={} to_map50_0.9={} onnx_bytes={}",
        trained.best_epoch,
        trained.evaluation.map50,
        trained.evaluation.map50_95,
        show(reached_50),
        show(reached_90),
        onnx.len()
    );
    let ours = Figures {
        images_per_second,
        seconds,
        test_map50,
        to_map50_50: reached_50,
        to_map50_90: reached_90,
    };
    match std::env::var_os("ULTRALYTICS_PYTHON") {
        Some(python) => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let theirs = ultralytics(
                Path::new(&python),
                &root,
                &config,
                data.train.len(),
                threads,
                accelerator,
            )?;
            side_by_side(&ours, &theirs, epochs, runs_on, accelerator);
        }
        None if root.ends_with("shapes") => anchor(&root, seconds, epochs, data.train.len(), test_map50),
        None => {}
    }
    Ok(())
}

/// One trainer's figures from one run.
struct Figures {
    /// Training only (augmentation, forward, backward, step), as both trainers count it.
    images_per_second: f64,
    /// Wall clock of the whole training, validation included.
    seconds: f64,
    test_map50: f64,
    to_map50_50: Option<f64>,
    to_map50_90: Option<f64>,
}

/// Ultralytics' run of the same recipe (`ultralytics_train.py`), its `EPOCH` lines passed through.
fn ultralytics(
    python: &Path,
    root: &Path,
    config: &TrainConfig,
    train_images: usize,
    threads: usize,
    accelerator: Accelerator,
) -> Result<Figures, String> {
    // Beside this source, or where `ULTRALYTICS_SCRIPT` says (a binary run on another machine).
    let script = std::env::var_os("ULTRALYTICS_SCRIPT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ultralytics_train.py"),
        PathBuf::from,
    );
    println!("ultralytics: same images, epochs, batch and size, {threads} torch threads, on {accelerator}");
    let output = Command::new(python)
        .arg(&script)
        .arg(root)
        .args(
            [
                config.epochs,
                config.batch,
                config.imgsz as usize,
                train_images,
                threads,
            ]
            .map(|n| n.to_string()),
        )
        .arg(match accelerator {
            Accelerator::Cpu => "cpu",
            Accelerator::Gpu => "0",
        })
        .env("OMP_NUM_THREADS", threads.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("EPOCH")) {
        println!("ultralytics {line}");
    }
    if !output.status.success() {
        return Err(format!("ultralytics_train.py failed ({})", output.status));
    }
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or("ultralytics_train.py printed no RESULT line")?;
    let field = |name: &str| {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .ok_or(format!("no {name} in {result}"))
    };
    let number = |name: &str| field(name)?.parse::<f64>().map_err(|e| format!("{name}: {e}"));
    let optional = |name: &str| field(name).map(|v| v.parse::<f64>().ok());
    Ok(Figures {
        images_per_second: number("images_per_second")?,
        seconds: number("seconds")?,
        test_map50: number("test_map50")?,
        to_map50_50: optional("to_map50_0.5")?,
        to_map50_90: optional("to_map50_0.9")?,
    })
}

fn side_by_side(ours: &Figures, theirs: &Figures, epochs: usize, runs_on: &str, accelerator: Accelerator) {
    let time = |t: Option<f64>| t.map_or("never".to_string(), |s| format!("{s:.0} s"));
    let them = match accelerator {
        Accelerator::Cpu => "torch, CPU",
        Accelerator::Gpu => "torch, CUDA",
    };
    println!("\n| after {epochs} epochs | distillery, {runs_on} | ultralytics ({them}) | speed, ours ÷ theirs |");
    println!("|---|---|---|---|");
    println!(
        "| training images/s | {:.2} | {:.2} | {:.2}× |",
        ours.images_per_second,
        theirs.images_per_second,
        ours.images_per_second / theirs.images_per_second.max(1e-9)
    );
    println!(
        "| whole training | {:.0} s | {:.0} s | {:.2}× |",
        ours.seconds,
        theirs.seconds,
        theirs.seconds / ours.seconds.max(1e-9)
    );
    println!("| test mAP50 | {:.4} | {:.4} | |", ours.test_map50, theirs.test_map50);
    println!(
        "| to val mAP50 0.5 | {} | {} | |",
        time(ours.to_map50_50),
        time(theirs.to_map50_50)
    );
    println!(
        "| to val mAP50 0.9 | {} | {} | |",
        time(ours.to_map50_90),
        time(theirs.to_map50_90)
    );
}

/// Ultralytics 8.4's training of YOLOv8n on the same set, recorded with the reference models
/// (`../shared/models/README.md`: 30 epochs of the 400 training images at 320, batch 16, on this
/// kind of 2-core machine, in 0.70 h; its test mAP in `shapes-metrics.json`).
const ULTRALYTICS_EPOCHS: f64 = 30.0;
const ULTRALYTICS_TRAIN_IMAGES: f64 = 400.0;
const ULTRALYTICS_SECONDS: f64 = 0.70 * 3600.0;

fn anchor(root: &Path, seconds: f64, epochs: usize, images: usize, test_map50: f64) {
    let metrics = std::fs::read_to_string(root.with_file_name("shapes-metrics.json")).unwrap_or_default();
    let their_map50 = metrics
        .split("\"test_map50\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let ours = (epochs * images) as f64 / seconds.max(1e-9);
    let theirs = ULTRALYTICS_EPOCHS * ULTRALYTICS_TRAIN_IMAGES / ULTRALYTICS_SECONDS;
    println!(
        "ANCHOR ultralytics (recorded): {theirs:.2} images/s overall (validation included), test mAP50 {} after 30 epochs · ours: {ours:.2} images/s overall, test mAP50 {test_map50:.4} after {epochs} epochs · speed ratio {:.2}",
        their_map50.map_or("?".into(), |m| format!("{m:.3}")),
        ours / theirs
    );
}

/// The exported student's test mAP50, run by tract as the studio runs it.
fn test_map50(detector: &models::Detector, test: &[train::augment::Sample], classes: usize) -> Result<f64, String> {
    let mut truths = Vec::new();
    let mut predictions = Vec::new();
    for (i, sample) in test.iter().enumerate() {
        let pixels = models::Pixels {
            data: sample.image.as_raw(),
            width_px: sample.image.width(),
            height_px: sample.image.height(),
            channels: 3,
        };
        let found = detector.detect(pixels, 0.001, 0.7).map_err(|e| e.to_string())?;
        truths.extend(sample.targets.iter().map(|t| train::GroundTruth {
            image: i,
            class_index: t.class,
            bbox: t.xyxy,
        }));
        predictions.extend(found.detections.into_iter().map(|d| train::Prediction {
            image: i,
            class_index: d.class_index,
            score: d.score,
            bbox: d.bbox,
        }));
    }
    Ok(train::evaluate(&truths, &predictions, classes).map50)
}

/// `names:` of the data set's `data.yaml` (`  0: circle` lines).
fn class_names(root: &Path) -> Result<Vec<String>, String> {
    let yaml = std::fs::read_to_string(root.join("data.yaml")).map_err(|e| format!("data.yaml: {e}"))?;
    let names: Vec<String> = yaml
        .lines()
        .skip_while(|l| !l.starts_with("names:"))
        .skip(1)
        .map_while(|l| l.trim().split_once(':').map(|(_, n)| n.trim().to_string()))
        .collect();
    if names.is_empty() {
        return Err("data.yaml has no names".into());
    }
    Ok(names)
}
