//! `cargo xtask bench-teacher [IMAGES]`: images/s of a teacher job (release `distillery teacher`,
//! decode + letterbox + model + NMS + storing the boxes) on both of the server's engines — tract
//! (the default) and onnxruntime (`--onnxruntime`, the PyPI wheel's library) — beside onnxruntime
//! in Python (PyPI; PIL decode + the same letterbox + session run) on the same JPEGs and graphs,
//! at 1 thread and at every core, in the same run. Prints figures; asserts nothing.
//!
//! Threads mean what each engine does best with them: tract runs that many images at once, one
//! thread each; onnxruntime (in the job and in Python) runs one image at a time with that many
//! intra-op threads, the job decoding the next images meanwhile (Python's decoding takes turns
//! with the model on one core).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, ensure};
use e2e::fixtures;

const MODELS: [&str; 2] = ["yolov8n-640-random", "yolo11n-640-random"];

const ORT_SCRIPT: &str = r#"
import glob, sys, time
import numpy as np, onnxruntime as ort
from PIL import Image
model, folder, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
feed = session.get_inputs()[0]
size = feed.shape[2]
def tensor(path):
    image = Image.open(path).convert("RGB")
    scale = min(size / image.width, size / image.height)
    w, h = round(image.width * scale), round(image.height * scale)
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top:top + h, left:left + w] = np.asarray(image.resize((w, h), Image.BILINEAR))
    return (canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
files = sorted(glob.glob(folder + "/*.jpg"))
session.run(None, {feed.name: tensor(files[0])})
started = time.perf_counter()
for path in files:
    session.run(None, {feed.name: tensor(path)})
print(len(files) / (time.perf_counter() - started))
"#;

fn run(command: &mut Command) -> anyhow::Result<String> {
    let out = command.output().with_context(|| format!("cannot run {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() -> anyhow::Result<()> {
    let count: u32 = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(500);
    let python = std::env::var_os("ORT_PYTHON").context("ORT_PYTHON: run this through `cargo xtask bench-teacher`")?;
    let library = std::env::var("ORT_LIBRARY").context("ORT_LIBRARY: run this through `cargo xtask bench-teacher`")?;
    let bin = e2e::studio::binary_path();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let work = tempfile::tempdir()?;
    let images = work.path().join("images");
    std::fs::create_dir_all(&images)?;
    eprintln!("generating {count} JPEGs (1280×720)…");
    for n in 0..count {
        std::fs::write(
            images.join(format!("{n:05}.jpg")),
            fixtures::numbered_jpeg(1280, 720, n),
        )?;
    }
    let script = work.path().join("ort_bench.py");
    std::fs::write(&script, ORT_SCRIPT)?;
    let data = work.path().join("studio");
    let studio = |args: &[&str]| {
        let mut command = Command::new(&bin);
        command.args(args).arg("--data-dir").arg(&data);
        command
    };
    run(studio(&["import", &images.display().to_string(), "--project", "Bench"]).env("DISTILLERY_LOG", "warn"))?;

    println!("\nteacher images/s over {count} JPEGs of 1280×720 on {cores} cores");
    println!(
        "| model | threads | distillery teacher, tract | distillery teacher, onnxruntime | onnxruntime (Python) | tract ratio | onnxruntime engine ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in MODELS {
        let model = e2e::reference_models_dir().join(format!("{name}.onnx"));
        for threads in [1, cores] {
            let mut rates = Vec::new();
            for engine in [&[][..], &["--onnxruntime", library.as_str()][..]] {
                // A fresh teacher version each time, so every image is labeled again.
                let added = run(studio(&[
                    "model",
                    "add",
                    &model.display().to_string(),
                    "--project",
                    "Bench",
                    "--role",
                    "teacher",
                ])
                .env("DISTILLERY_LOG", "warn"))?;
                let model_id = added
                    .split("model ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .context(format!("no model id in {added:?}"))?
                    .to_owned();
                let started = Instant::now();
                run(studio(&[
                    "teacher",
                    "--project",
                    "Bench",
                    "--model-id",
                    &model_id,
                    "--inference-threads",
                    &threads.to_string(),
                ])
                .args(engine)
                .env("DISTILLERY_LOG", "warn"))?;
                rates.push(f64::from(count) / started.elapsed().as_secs_f64());
            }
            let (tract, onnxruntime) = (rates[0], rates[1]);
            let theirs: f64 = run(Command::new(&python)
                .arg(&script)
                .arg(&model)
                .arg(&images)
                .arg(threads.to_string())
                .env("OMP_NUM_THREADS", threads.to_string()))?
            .trim()
            .parse()
            .context("onnxruntime printed no rate")?;
            println!(
                "| {name} | {threads} | {tract:.2} | {onnxruntime:.2} | {theirs:.2} | {:.2}× | {:.2}× |",
                tract / theirs,
                onnxruntime / theirs
            );
        }
    }
    Ok(())
}
