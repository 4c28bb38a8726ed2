//! `cargo xtask bench-browser`: per-image latency of the reference detectors in one headless
//! Chromium — our inference worker (tract → wasm, SIMD128) beside onnxruntime-web (npm, wasm
//! backend), same input, same thread count (1) — and the ratio. Also: the longest main-thread task while our worker runs (the UI must stay
//! responsive), where the worker's time goes by operator, and the wasm download sizes.
//!
//! Needs `ORT_WEB_DIR` (onnxruntime-web's `dist/`), plus what `Studio`/`Browser` need.

use std::path::PathBuf;

use anyhow::{Context, ensure};
use e2e::files::FileServer;
use e2e::{Browser, Studio};
use serde_json::{Value, json};

const MODELS: [&str; 2] = ["yolov8n-320-random", "yolov8n-640-random"];
const WARMUP: u32 = 3;
const ROUNDS: u32 = 8;
/// The worker script, as the app starts it (`frontend/src/inference.rs`).
const WORKER: &str = "/worker_loader.js";
const RUNS_PER_ROUND: u32 = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ort_dir = PathBuf::from(std::env::var("ORT_WEB_DIR").context("set ORT_WEB_DIR to onnxruntime-web's dist/")?);
    let models_dir = e2e::reference_models_dir();
    let studio = Studio::start().await?;
    let files = FileServer::start(&[("ort", ort_dir), ("models", models_dir.clone())]).await?;
    let project = studio.create_project("Bench", &["thing"]).await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = bench(&browser, &studio, &files, project.id, &models_dir).await;
    browser.quit().await?;
    outcome
}

async fn bench(
    browser: &Browser,
    studio: &Studio,
    files: &FileServer,
    project_id: i64,
    models_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let client = &browser.client;
    client.goto(&format!("{}/projects/{project_id}", studio.url)).await?;
    browser.find("h1[data-project-id]").await?;
    println!(
        "median per-image latency, {} runs each in {ROUNDS} alternating rounds after warm-up, 1 thread, headless Chromium",
        ROUNDS * RUNS_PER_ROUND
    );
    println!(
        "{:<20} {:>10} {:>14} {:>8} {:>16}",
        "model", "ours (ms)", "ort-web (ms)", "ratio", "main-thread max"
    );
    let mut profiles = Vec::new();
    for name in MODELS {
        let form = reqwest::multipart::Form::new().text("role", "student").part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(models_dir.join(format!("{name}.onnx")))?)
                .file_name(format!("{name}.onnx")),
        );
        let model: api::RegisteredModel = studio
            .http()
            .clone()
            .post(studio.api(&format!("/api/projects/{project_id}/models")))
            .multipart(form)
            .send()
            .await?
            .json()
            .await?;
        let input_url = format!("{}/models/{name}.input.npy", files.url);
        let ort_model_url = format!("{}/models/{name}.onnx", files.url);
        // The runtimes take turns, round after round, so a slow spell of this shared machine
        // lands on every column rather than on whichever happened to run then.
        let mut times: [Vec<f64>; 2] = Default::default();
        let (mut longest, mut operators) = (0f64, Value::Null);
        for round in 0..ROUNDS {
            let warmup = if round == 0 { WARMUP } else { 1 };
            let mut ours = run_ours(client, WORKER, &model.url, &input_url, warmup).await?;
            ensure!(ours["answer"]["type"] == "bench", "{name}: {ours}");
            times[0].extend(numbers(&ours["answer"]["times_ms"]));
            longest = longest.max(ours["longest"].as_f64().unwrap_or(0.0));
            operators = ours["answer"]["operators"].take();
            let ort = run_ort(client, &files.url, &ort_model_url, &input_url, model.input_size, warmup).await?;
            ensure!(ort.get("error").is_none(), "{name}: onnxruntime-web: {ort}");
            times[1].extend(numbers(&ort["times"]));
        }
        let [ours, ort] = times.each_ref().map(|t| median(t));
        println!(
            "{name:<20} {ours:>10.1} {ort:>14.1} {:>7.2}× {longest:>13.0} ms",
            ours / ort
        );
        profiles.push((name, operators));
    }
    // Where our worker's time goes (one profiled run of each model, operators timed one by one).
    for (name, operators) in profiles {
        let top: Vec<String> = operators
            .as_array()
            .into_iter()
            .flatten()
            .take(6)
            .map(|op| {
                format!(
                    "{} {:.1} ms",
                    op["operator"].as_str().unwrap_or("?"),
                    op["ms"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        println!("{name} in our worker: {}", top.join(", "));
    }
    let dist = std::env::var("DISTILLERY_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| e2e::workspace_root().join("dist"));
    // Sizes as downloaded: the web build precompresses every asset (`.gz` beside it).
    for entry in std::fs::read_dir(&dist)?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".wasm") {
            let raw = entry.metadata()?.len() as f64 / 1e6;
            let gz = std::fs::metadata(dist.join(format!("{name}.gz")))
                .map(|m| m.len() as f64 / 1e6)
                .unwrap_or(f64::NAN);
            println!("{name}: {raw:.2} MB, {gz:.2} MB gzip");
        }
    }
    Ok(())
}

/// Our worker's latencies: its `bench` request (the worker is started once and kept on the page
/// between rounds), while watching the page's main thread for long tasks.
async fn run_ours(
    client: &fantoccini::Client,
    script: &str,
    model_url: &str,
    input_url: &str,
    warmup: u32,
) -> anyhow::Result<Value> {
    let answer = client
        .execute_async(
            r#"
            const [script, request, done] = arguments;
            window.benchWorkers = window.benchWorkers || {};
            window.benchWorkers[script] = window.benchWorkers[script] || new Promise((resolve, reject) => {
                const worker = new Worker(script);
                worker.onerror = e => reject(e.message || 'the worker failed to start');
                worker.onmessage = e => { if (JSON.parse(e.data).type === 'ready') resolve(worker); };
            });
            (async () => {
                const worker = await window.benchWorkers[script];
                let longest = 0;
                const observer = new PerformanceObserver(list => list.getEntries().forEach(e => longest = Math.max(longest, e.duration)));
                observer.observe({entryTypes: ['longtask']});
                const answer = await new Promise((resolve, reject) => {
                    worker.onmessage = e => resolve(JSON.parse(e.data));
                    worker.onerror = e => reject(e.message || 'the worker crashed');
                    worker.postMessage(JSON.stringify(request));
                });
                observer.disconnect();
                return {answer, longest};
            })().then(r => done(JSON.stringify(r)), e => done(JSON.stringify({error: String(e)})));
            "#,
            vec![
                json!(script),
                json!({"type": "bench", "id": 1, "model_url": model_url, "input_url": input_url, "warmup": warmup, "runs": RUNS_PER_ROUND}),
            ],
        )
        .await?;
    Ok(serde_json::from_str(answer.as_str().unwrap_or("{}"))?)
}

/// onnxruntime-web's latencies: wasm backend, one thread, the same input tensor. The session is
/// created once per model and kept on the page between rounds.
async fn run_ort(
    client: &fantoccini::Client,
    base: &str,
    model_url: &str,
    input_url: &str,
    size: u32,
    warmup: u32,
) -> anyhow::Result<Value> {
    let answer = client
        .execute_async(
            r#"
            const [base, modelUrl, inputUrl, size, warmup, runs, done] = arguments;
            (async () => {
                const ort = await import(base + '/ort/ort.wasm.min.mjs');
                ort.env.wasm.wasmPaths = base + '/ort/';
                ort.env.wasm.numThreads = 1;
                window.ortBench = window.ortBench || {};
                if (!window.ortBench[modelUrl]) {
                    const session = await ort.InferenceSession.create(modelUrl, {executionProviders: ['wasm']});
                    const npy = new Uint8Array(await (await fetch(inputUrl)).arrayBuffer());
                    const headerLength = npy[8] | (npy[9] << 8);
                    const data = new Float32Array(npy.buffer.slice(10 + headerLength));
                    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [1, 3, size, size])};
                    window.ortBench[modelUrl] = {session, feeds};
                }
                const {session, feeds} = window.ortBench[modelUrl];
                const times = [];
                for (let i = 0; i < warmup + runs; i++) {
                    const start = performance.now();
                    await session.run(feeds);
                    if (i >= warmup) times.push(performance.now() - start);
                }
                return {times};
            })().then(r => done(JSON.stringify(r)), e => done(JSON.stringify({error: String(e)})));
            "#,
            vec![
                json!(base),
                json!(model_url),
                json!(input_url),
                json!(size),
                json!(warmup),
                json!(RUNS_PER_ROUND),
            ],
        )
        .await?;
    Ok(serde_json::from_str(answer.as_str().unwrap_or("{}"))?)
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}
