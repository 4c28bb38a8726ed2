//! `cargo xtask bench-browser`: per-image latency of the reference detectors in one headless
//! Chromium — our inference worker (tract → wasm, SIMD) beside onnxruntime-web (npm, wasm
//! backend), same input, same thread count (1) — and the ratio. Also: the longest main-thread
//! task while our worker runs (the UI must stay responsive) and the wasm download sizes.
//!
//! Needs `ORT_WEB_DIR` (onnxruntime-web's `dist/`), plus what `Studio`/`Browser` need.

use std::path::PathBuf;

use anyhow::{Context, ensure};
use e2e::files::FileServer;
use e2e::{Browser, Studio};
use serde_json::{Value, json};

const MODELS: [&str; 2] = ["yolov8n-320-random", "yolov8n-640-random"];
const WARMUP: u32 = 3;
const RUNS: u32 = 15;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ort_dir = PathBuf::from(std::env::var("ORT_WEB_DIR").context("set ORT_WEB_DIR to onnxruntime-web's dist/")?);
    let models_dir = e2e::reference_models_dir();
    let studio = Studio::start().await?;
    let files = FileServer::start(&[("ort", ort_dir), ("models", models_dir.clone())]).await?;
    let project = studio.create_project("Bench", &["thing"]).await?;
    let browser = Browser::start().await?;
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
    println!("median per-image latency after {WARMUP} warm-up runs, {RUNS} runs, 1 thread, headless Chromium");
    println!(
        "{:<22} {:>12} {:>16} {:>8} {:>18}",
        "model", "ours (ms)", "ort-web (ms)", "ratio", "main-thread max"
    );
    for name in MODELS {
        let form = reqwest::multipart::Form::new().text("role", "student").part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(models_dir.join(format!("{name}.onnx")))?)
                .file_name(format!("{name}.onnx")),
        );
        let model: api::RegisteredModel = reqwest::Client::new()
            .post(studio.api(&format!("/api/projects/{project_id}/models")))
            .multipart(form)
            .send()
            .await?
            .json()
            .await?;
        let input_url = format!("{}/models/{name}.input.npy", files.url);
        // Ours: the real worker; meanwhile, watch the page's main thread for long tasks.
        let ours = client
            .execute_async(
                r#"
                const [request, done] = arguments;
                let longest = 0;
                const observer = new PerformanceObserver(list => list.getEntries().forEach(e => longest = Math.max(longest, e.duration)));
                observer.observe({entryTypes: ['longtask']});
                window.distilleryWorker(JSON.stringify(request)).then(
                    answer => { observer.disconnect(); done(JSON.stringify({answer: JSON.parse(answer), longest})); },
                    error => done(JSON.stringify({error: String(error)})));
                "#,
                vec![json!({"type": "bench", "id": 0, "model_url": model.url, "input_url": input_url, "warmup": WARMUP, "runs": RUNS})],
            )
            .await?;
        let ours: Value = serde_json::from_str(ours.as_str().unwrap_or("{}"))?;
        ensure!(ours.get("error").is_none(), "{name}: {ours}");
        let our_times = numbers(&ours["answer"]["times_ms"]);
        // onnxruntime-web, wasm backend, one thread, same input tensor.
        let ort = client
            .execute_async(
                r#"
                const [base, modelUrl, inputUrl, size, warmup, runs, done] = arguments;
                (async () => {
                    const ort = await import(base + '/ort/ort.wasm.min.mjs');
                    ort.env.wasm.wasmPaths = base + '/ort/';
                    ort.env.wasm.numThreads = 1;
                    const session = await ort.InferenceSession.create(modelUrl, {executionProviders: ['wasm']});
                    const npy = new Uint8Array(await (await fetch(inputUrl)).arrayBuffer());
                    const headerLength = npy[8] | (npy[9] << 8);
                    const data = new Float32Array(npy.buffer.slice(10 + headerLength));
                    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [1, 3, size, size])};
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
                    json!(files.url),
                    json!(format!("{}/models/{name}.onnx", files.url)),
                    json!(input_url),
                    json!(model.input_size),
                    json!(WARMUP),
                    json!(RUNS),
                ],
            )
            .await?;
        let ort: Value = serde_json::from_str(ort.as_str().unwrap_or("{}"))?;
        ensure!(ort.get("error").is_none(), "{name}: onnxruntime-web: {ort}");
        let ort_times = numbers(&ort["times"]);
        let (a, b) = (median(&our_times), median(&ort_times));
        println!(
            "{name:<22} {a:>12.1} {b:>16.1} {:>7.2}× {:>15.0} ms",
            a / b,
            ours["longest"].as_f64().unwrap_or(0.0)
        );
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
