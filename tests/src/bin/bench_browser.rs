//! `cargo xtask bench-browser`: per-image latency of the reference detectors in one headless
//! Chromium, our inference worker beside onnxruntime-web (npm) on the same graph and input:
//!
//! - CPU: our worker (tract → wasm: the threaded relaxed-SIMD build the app starts in a
//!   cross-origin isolated Chromium, one thread per core; the one-thread relaxed-SIMD and SIMD128
//!   builds other browsers get) beside onnxruntime-web's wasm backend with one thread and with
//!   every core the browser reports, each compared at the same thread count;
//! - GPU: our worker's WebGPU executor beside onnxruntime-web's WebGPU backend, with the
//!   dispatches and submissions one inference of ours makes.
//!
//! For each: the median warm latency (runtimes take turns, round after round), the first-image
//! latency (model load, pipeline build and first run), the ratio ours / theirs — the median over
//! the rounds of each round's ratio, with the lowest and highest: the shared host's slow spells
//! land on both runtimes of a round, and the range says how far one run's figures can be trusted
//! (on the bench host, one build measured 0.80× and then 0.69× at 640 px on one thread). Also:
//! the longest main-thread task while our worker runs (the UI must stay responsive), where our time goes by
//! operator or kernel, the wasm download sizes, and the host's processor (the ratios move with
//! it). On a software WebGPU adapter (SwiftShader in headless Chromium without a GPU) the GPU
//! figures only prove the path works.
//!
//! Its one argument, `cpu`, `gpu` or `all` (the default), says which engines to measure: the
//! software WebGPU adapter takes most of a full run. Needs `ORT_WEB_DIR` (onnxruntime-web's
//! `dist/`), plus what `Studio`/`Browser` need.

use std::path::PathBuf;

use anyhow::{Context, ensure};
use e2e::files::FileServer;
use e2e::{Browser, Studio};
use serde_json::{Value, json};

const MODELS: [&str; 2] = ["yolov8n-320-random", "yolov8n-640-random"];
/// The worker builds, as the app starts them (`frontend/src/inference.rs`): a script, and
/// whether it is an ES module.
const THREADED_WORKER: (&str, bool) = ("/worker_threads_loader.js", true);
const RELAXED_SIMD_WORKER: (&str, bool) = ("/worker_relaxed_loader.js", false);
const SIMD128_WORKER: (&str, bool) = ("/worker_loader.js", false);

/// How long each engine family is measured: CPU runs are cheap, a software GPU adapter is not.
struct Rounds {
    warmup: u32,
    rounds: u32,
    runs_per_round: u32,
}

const CPU_ROUNDS: Rounds = Rounds {
    warmup: 3,
    rounds: 8,
    runs_per_round: 4,
};
const GPU_ROUNDS: Rounds = Rounds {
    warmup: 1,
    rounds: 3,
    runs_per_round: 2,
};

/// One runtime's figures on one model.
#[derive(Default)]
struct Column {
    times: Vec<f64>,
    /// The median of each round's runs, round by round.
    round_medians: Vec<f64>,
    /// Load + first run, per round (each round loads afresh).
    first: Vec<f64>,
    failed: Option<String>,
}

impl Column {
    fn add(&mut self, answer: anyhow::Result<Value>) {
        match answer {
            Ok(answer) => {
                let times = numbers(&answer["times"]);
                if !times.is_empty() {
                    self.round_medians.push(median(&times));
                }
                self.times.extend(times);
                if let Some(first) = answer["first"].as_f64() {
                    self.first.push(first);
                }
            }
            Err(error) => self.failed = Some(format!("{error:#}")),
        }
    }

    fn cell(&self) -> String {
        match &self.failed {
            Some(_) => "failed".into(),
            None => format!("{:.1}", median(&self.times)),
        }
    }

    fn first_cell(&self) -> String {
        match &self.failed {
            Some(_) => "-".into(),
            None => format!("{:.0}", median(&self.first)),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let engines = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let (cpu, gpu) = (engines != "gpu", engines != "cpu");
    let ort_dir = PathBuf::from(std::env::var("ORT_WEB_DIR").context("set ORT_WEB_DIR to onnxruntime-web's dist/")?);
    let models_dir = e2e::reference_models_dir();
    let studio = Studio::start().await?;
    let files = FileServer::start(&[("ort", ort_dir), ("models", models_dir.clone())]).await?;
    let project = studio.create_project("Bench", &["thing"]).await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = bench(&browser, &studio, &files, project.id, &models_dir, (cpu, gpu)).await;
    browser.quit().await?;
    outcome
}

async fn bench(
    browser: &Browser,
    studio: &Studio,
    files: &FileServer,
    project_id: i64,
    models_dir: &std::path::Path,
    (cpu, gpu): (bool, bool),
) -> anyhow::Result<()> {
    let client = &browser.client;
    client
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(std::time::Duration::from_secs(600)),
            None,
            None,
        ))
        .await?;
    client.goto(&format!("{}/projects/{project_id}", studio.url)).await?;
    browser.find("h1[data-project-id]").await?;
    let cores = client
        .execute(
            "return [navigator.hardwareConcurrency, self.crossOriginIsolated]",
            vec![],
        )
        .await?;
    let threads = cores[0].as_u64().unwrap_or(1).max(1);
    println!(
        "headless Chromium, {threads} cores, cross-origin isolated: {}; medians of warm runs taken in alternating rounds",
        cores[1]
    );
    println!("host CPU: {}", host_cpu());
    let mut reports = Vec::new();
    for name in MODELS {
        let model = register(studio, project_id, models_dir, name).await?;
        let input_url = format!("{}/models/{name}.input.npy", files.url);
        let ort_model_url = format!("{}/models/{name}.onnx", files.url);
        let ort = |backend: &'static str, threads: u64, warmup: u32, runs: u32| {
            let (base, model_url, input_url) = (files.url.clone(), ort_model_url.clone(), input_url.clone());
            async move {
                run_ort(
                    client,
                    &base,
                    &model_url,
                    &input_url,
                    model.input_size,
                    backend,
                    threads,
                    warmup,
                    runs,
                )
                .await
            }
        };

        // CPU. The runtimes take turns, round after round, so a slow spell of this shared
        // machine lands on every column rather than on whichever happened to run then.
        let (mut ours, mut ours_simd128, mut ours_threads) = (Column::default(), Column::default(), Column::default());
        let (mut ort_one, mut ort_all) = (Column::default(), Column::default());
        let (mut longest, mut cpu_profile, mut threads_profile) = (0f64, Value::Null, Value::Null);
        for round in 0..if cpu { CPU_ROUNDS.rounds } else { 0 } {
            let warmup = if round == 0 { CPU_ROUNDS.warmup } else { 1 };
            let runs = CPU_ROUNDS.runs_per_round;
            let answer = run_ours(client, RELAXED_SIMD_WORKER, &model.url, &input_url, "cpu", warmup, runs).await?;
            longest = longest.max(answer["longest"].as_f64().unwrap_or(0.0));
            cpu_profile = answer["profile"].clone();
            ours.add(Ok(answer));
            ours_simd128.add(run_ours(client, SIMD128_WORKER, &model.url, &input_url, "cpu", warmup, runs).await);
            if threads > 1 {
                let answer = run_ours(client, THREADED_WORKER, &model.url, &input_url, "cpu", warmup, runs).await;
                if let Ok(answer) = &answer {
                    threads_profile = answer["profile"].clone();
                }
                ours_threads.add(answer);
            }
            ort_one.add(ort("wasm", 1, warmup, CPU_ROUNDS.runs_per_round).await);
            if threads > 1 {
                ort_all.add(ort("wasm", threads, warmup, CPU_ROUNDS.runs_per_round).await);
            }
        }

        // GPU.
        let (mut ours_gpu, mut ort_gpu) = (Column::default(), Column::default());
        let (mut gpu_profile, mut gpu_work, mut engine) = (Value::Null, Value::Null, Value::Null);
        for _ in 0..if gpu { GPU_ROUNDS.rounds } else { 0 } {
            let (warmup, runs) = (GPU_ROUNDS.warmup, GPU_ROUNDS.runs_per_round);
            let answer = run_ours(client, RELAXED_SIMD_WORKER, &model.url, &input_url, "gpu", warmup, runs).await?;
            gpu_profile = answer["profile"].clone();
            gpu_work = answer["gpu_work"].clone();
            engine = answer["engine"].clone();
            ours_gpu.add(Ok(answer));
            ort_gpu.add(ort("webgpu", 1, warmup, runs).await);
        }
        ensure!(
            !gpu || engine["kind"] == "webgpu",
            "{name}: our worker did not run on WebGPU: {engine}"
        );
        reports.push(Report {
            name,
            ours,
            ours_simd128,
            ours_threads,
            ort_one,
            ort_all,
            ours_gpu,
            ort_gpu,
            longest,
            cpu_profile,
            threads_profile,
            gpu_profile,
            gpu_work,
            adapter: engine["name"].as_str().unwrap_or("?").to_owned(),
        });
    }
    if cpu {
        print_cpu_reports(&reports, threads);
    }
    if gpu {
        print_gpu_reports(&reports);
    }
    print_download_sizes()
}

/// Everything measured on one model.
struct Report {
    name: &'static str,
    /// The relaxed-SIMD build, one thread.
    ours: Column,
    ours_simd128: Column,
    /// The threaded relaxed-SIMD build, one thread per core.
    ours_threads: Column,
    ort_one: Column,
    ort_all: Column,
    ours_gpu: Column,
    ort_gpu: Column,
    longest: f64,
    cpu_profile: Value,
    /// The same, of the threaded build (null on one core).
    threads_profile: Value,
    gpu_profile: Value,
    gpu_work: Value,
    adapter: String,
}

fn print_cpu_reports(reports: &[Report], threads: u64) {
    println!();
    println!("CPU (ms; ours: relaxed SIMD unless named SIMD128; ratios at equal thread counts)");
    println!(
        "{:<20} {:>9} {:>13} {:>12} {:>18} {:>10} {:>14} {:>18} {:>11} {:>12} {:>15}",
        "model",
        "ours 1t",
        "ours SIMD128",
        "ort-web 1t",
        "ratio",
        format!("ours {threads}t"),
        format!("ort-web {threads}t"),
        "ratio",
        "ours first",
        "ort first",
        "main-thread max"
    );
    for r in reports {
        println!(
            "{:<20} {:>9} {:>13} {:>12} {:>18} {:>10} {:>14} {:>18} {:>11} {:>12} {:>12.0} ms",
            r.name,
            r.ours.cell(),
            r.ours_simd128.cell(),
            r.ort_one.cell(),
            ratio(&r.ours, &r.ort_one),
            r.ours_threads.cell(),
            r.ort_all.cell(),
            ratio(&r.ours_threads, &r.ort_all),
            r.ours.first_cell(),
            r.ort_one.first_cell(),
            r.longest
        );
    }
    for r in reports {
        for failed in [&r.ours_simd128, &r.ours_threads, &r.ort_one, &r.ort_all]
            .into_iter()
            .filter_map(|c| c.failed.as_ref())
        {
            println!("{}: failed: {failed}", r.name);
        }
    }
    // Where our time goes (one profiled run of each build, operator by operator): an operator
    // that does not shrink on more threads is one that does not split.
    for r in reports {
        println!("{} on our CPU: {}", r.name, top_operators(&r.cpu_profile));
        if threads > 1 {
            println!(
                "{} on our CPU, {threads} threads: {}",
                r.name,
                top_operators(&r.threads_profile)
            );
        }
    }
}

fn print_gpu_reports(reports: &[Report]) {
    println!();
    println!(
        "WebGPU (ms; adapter: {})",
        reports.first().map_or("?", |r| r.adapter.as_str())
    );
    println!(
        "{:<20} {:>9} {:>12} {:>18} {:>11} {:>12} {:>11} {:>12}",
        "model", "ours", "ort-web", "ratio", "ours first", "ort first", "dispatches", "submissions"
    );
    for r in reports {
        println!(
            "{:<20} {:>9} {:>12} {:>18} {:>11} {:>12} {:>11} {:>12}",
            r.name,
            r.ours_gpu.cell(),
            r.ort_gpu.cell(),
            ratio(&r.ours_gpu, &r.ort_gpu),
            r.ours_gpu.first_cell(),
            r.ort_gpu.first_cell(),
            r.gpu_work["dispatches"],
            r.gpu_work["submissions"]
        );
    }
    for failed in reports
        .iter()
        .filter_map(|r| r.ort_gpu.failed.as_ref().map(|f| (r.name, f)))
    {
        println!("{}: failed: {}", failed.0, failed.1);
    }
    // Where our time goes (one profiled run, GPU kernels waited for one by one).
    for r in reports {
        println!("{} on our GPU: {}", r.name, top_operators(&r.gpu_profile));
    }
}

/// Ours / theirs, round by round: the median and, in brackets, the lowest and highest round.
fn ratio(ours: &Column, theirs: &Column) -> String {
    if ours.failed.is_some() || theirs.failed.is_some() {
        return "-".into();
    }
    // Both ran every round (a failed round fails the column), so the rounds pair up.
    let ratios: Vec<f64> = (ours.round_medians.iter().zip(&theirs.round_medians))
        .map(|(ours, theirs)| ours / theirs)
        .collect();
    let (Some(lowest), Some(highest)) = (
        ratios.iter().copied().min_by(f64::total_cmp),
        ratios.iter().copied().max_by(f64::total_cmp),
    ) else {
        return "-".into();
    };
    format!("{:.2}× ({lowest:.2}–{highest:.2})", median(&ratios))
}

fn top_operators(profile: &Value) -> String {
    let top: Vec<String> = profile
        .as_array()
        .into_iter()
        .flatten()
        .take(6)
        .map(|op| {
            format!(
                "{} ×{} {:.1} ms",
                op["operator"].as_str().unwrap_or("?"),
                op["count"],
                op["ms"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    top.join(", ")
}

/// Sizes as downloaded: the web build precompresses every asset (`.gz` beside it).
fn print_download_sizes() -> anyhow::Result<()> {
    let dist = std::env::var("DISTILLERY_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| e2e::workspace_root().join("dist"));
    println!();
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

async fn register(
    studio: &Studio,
    project_id: i64,
    models_dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<api::RegisteredModel> {
    let form = reqwest::multipart::Form::new().text("role", "student").part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(models_dir.join(format!("{name}.onnx")))?)
            .file_name(format!("{name}.onnx")),
    );
    Ok(studio
        .http()
        .clone()
        .post(studio.api(&format!("/api/projects/{project_id}/models")))
        .multipart(form)
        .send()
        .await?
        .json()
        .await?)
}

/// Our worker's (the build `script` starts) latencies on `engine`: its `bench` request (the worker is started once and kept
/// on the page between rounds; each request loads the model afresh), while watching the page's
/// main thread for long tasks. Answers `{times, first, longest, profile, gpu_work, engine}`.
async fn run_ours(
    client: &fantoccini::Client,
    (script, module): (&str, bool),
    model_url: &str,
    input_url: &str,
    engine: &str,
    warmup: u32,
    runs: u32,
) -> anyhow::Result<Value> {
    let answer = client
        .execute_async(
            r#"
            const [script, module, request, done] = arguments;
            window.benchWorkers = window.benchWorkers || {};
            window.benchWorkers[script] = window.benchWorkers[script] || new Promise((resolve, reject) => {
                const worker = new Worker(script, {type: module ? 'module' : 'classic'});
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
                json!(module),
                json!({"type": "bench", "id": 1, "model_url": model_url, "input_url": input_url,
                       "warmup": warmup, "runs": runs, "engine": engine}),
            ],
        )
        .await?;
    let answer: Value = serde_json::from_str(answer.as_str().unwrap_or("{}"))?;
    let bench = &answer["answer"];
    ensure!(bench["type"] == "bench", "our worker on {engine}: {answer}");
    Ok(json!({
        "times": bench["times_ms"],
        "first": bench["load_ms"].as_f64().unwrap_or(f64::NAN) + bench["first_run_ms"].as_f64().unwrap_or(f64::NAN),
        "longest": answer["longest"],
        "profile": bench["operators"],
        "gpu_work": bench["gpu_work"],
        "engine": bench["engine"],
    }))
}

/// onnxruntime-web's latencies on `backend` (`wasm` with `threads` threads, or `webgpu`), the
/// same input tensor. Each configuration is its own instance of the library (module URLs differ
/// by a query), since its thread count is fixed when its wasm starts; the first call creates
/// the session and times load + first run, later calls reuse it. Answers `{times, first?}`.
#[allow(clippy::too_many_arguments)]
async fn run_ort(
    client: &fantoccini::Client,
    base: &str,
    model_url: &str,
    input_url: &str,
    size: u32,
    backend: &str,
    threads: u64,
    warmup: u32,
    runs: u32,
) -> anyhow::Result<Value> {
    let answer = client
        .execute_async(
            r#"
            const [base, modelUrl, inputUrl, size, backend, threads, warmup, runs, done] = arguments;
            (async () => {
                const key = `${backend}-${threads}`;
                const script = backend === 'webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs';
                const ort = await import(`${base}/ort/${script}?${key}`);
                ort.env.wasm.wasmPaths = base + '/ort/';
                ort.env.wasm.numThreads = threads;
                window.ortBench = window.ortBench || {};
                const id = `${key} ${modelUrl}`;
                let first;
                if (!window.ortBench[id]) {
                    const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
                    const npy = new Uint8Array(await (await fetch(inputUrl)).arrayBuffer());
                    const headerLength = npy[8] | (npy[9] << 8);
                    const data = new Float32Array(npy.buffer.slice(10 + headerLength));
                    const start = performance.now();
                    const session = await ort.InferenceSession.create(bytes, {executionProviders: [backend]});
                    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [1, 3, size, size])};
                    await session.run(feeds);
                    first = performance.now() - start;
                    window.ortBench[id] = {session, feeds};
                }
                const {session, feeds} = window.ortBench[id];
                const times = [];
                for (let i = 0; i < warmup + runs; i++) {
                    const start = performance.now();
                    await session.run(feeds);
                    if (i >= warmup) times.push(performance.now() - start);
                }
                return {times, first};
            })().then(r => done(JSON.stringify(r)), e => done(JSON.stringify({error: String(e)})));
            "#,
            vec![
                json!(base),
                json!(model_url),
                json!(input_url),
                json!(size),
                json!(backend),
                json!(threads),
                json!(warmup),
                json!(runs),
            ],
        )
        .await?;
    let answer: Value = serde_json::from_str(answer.as_str().unwrap_or("{}"))?;
    if let Some(error) = answer.get("error") {
        anyhow::bail!("{backend} ({threads} threads): {error}");
    }
    Ok(answer)
}

/// The host's processor as Linux names it: the ratio to onnxruntime-web depends on it (the same
/// build has measured 0.78× against it on one cloud host and 0.91–0.96× on another), so a figure
/// means little without it.
fn host_cpu() -> String {
    let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else {
        return "unknown".into();
    };
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find_map(|line| line.split_once(':').filter(|(key, _)| key.trim() == name))
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} (family {}, model {})",
        field("model name"),
        field("cpu family"),
        field("model")
    )
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
