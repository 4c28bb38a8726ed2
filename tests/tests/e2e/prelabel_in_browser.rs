//! The student runs in the browser: the reference Ultralytics exports reproduce onnxruntime's
//! outputs inside the real worker on both of its engines (tract in wasm — on one thread and on a
//! pool of Web Workers — and the GPU executor on
//! headless Chromium's WebGPU — a software adapter, so "Auto" keeps the CPU and choosing "GPU"
//! in the panel moves the student there, with the same proposals), and the GPU executor's
//! operator cases reproduce tract's outputs on that WebGPU (those two in a test of their own);
//! opening an image shows dashed
//! proposals with scores, a threshold slider filters them, a click accepts one, a right-click
//! dismisses one, Enter accepts the rest, undo takes them back; the rest of the project is
//! pre-labeled in the background and ranked; a reload takes the model from the browser cache;
//! a server scoring job started from the project page reports its end to the page by push;
//! the editor's Next follows the ranking picked on the project page.

use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine;
use e2e::browser::Modifier;
use e2e::{Browser, Studio};
use serde_json::{Value, json};

const MODELS: [&str; 4] = [
    "yolov8n-320-random",
    "yolov8n-640-random",
    "yolo11n-640-random",
    "shapes-yolov8n-320",
];
/// How far an image's uncertainty score may differ between the browser (Chromium's JPEG decoder)
/// and the server (the `image` crate's): the decoders may round a pixel differently, nothing more.
const BROWSER_SERVER_SCORE_TOLERANCE: f32 = 0.02;
/// A build of the inference worker (`cargo xtask build-web` makes them all).
struct WorkerBuild {
    script: &'static str,
    /// Whether its script is an ES module (the threaded build's is).
    module: bool,
    /// What its CPU engine's name says it runs on.
    instructions: &'static str,
    /// Whether it runs tract on a pool of one thread per core (at most 8: the worker's cap).
    threaded: bool,
    /// The kernel its SiLU activations outside the matrix products run on: the worker's own
    /// where the build has relaxed SIMD (the `NAME` that `models::wasm_silu` registers), else
    /// tract-linalg's SIMD128 one.
    silu_kernel: &'static str,
    /// The engines its conformance runs on (the GPU path is the same code in each; the editor
    /// below also runs it in the threaded build, the one the app starts here).
    engines: &'static [&'static str],
}

const WORKER_BUILDS: [WorkerBuild; 3] = [
    // The page is cross-origin isolated: tract's kernels split over a pool of Web Workers, one
    // per core, and must give the same answers.
    WorkerBuild {
        script: "/worker_threads_loader.js",
        module: true,
        instructions: "relaxed SIMD",
        threaded: true,
        silu_kernel: "distillery_wasm_relaxed_silu",
        engines: &["cpu"],
    },
    WorkerBuild {
        script: "/worker_relaxed_loader.js",
        module: false,
        instructions: "relaxed SIMD",
        threaded: false,
        silu_kernel: "distillery_wasm_relaxed_silu",
        engines: &["cpu", "gpu"],
    },
    WorkerBuild {
        script: "/worker_loader.js",
        module: false,
        instructions: "SIMD128",
        threaded: false,
        silu_kernel: "wasm_simd128",
        engines: &["cpu"],
    },
];

impl WorkerBuild {
    /// How its CPU engine names itself on a machine with `cores` logical cores.
    fn cpu_name(&self, cores: u64) -> String {
        match cores.min(8) {
            threads if self.threaded && threads > 1 => format!("{}, {threads} threads", self.instructions),
            _ => format!("{}, 1 thread", self.instructions),
        }
    }
}

/// The worker's own matrix kernel (`models::wasm_gemm::NAME`).
const BROWSER_MATMUL_KERNEL: &str = "distillery_wasm_f32_4x8";
/// The same kernel applying SiLU as it stores (`models::wasm_gemm::SILU_NAME`).
const BROWSER_SILU_MATMUL_KERNEL: &str = "distillery_wasm_f32_4x8_silu";

/// The worker's engines against onnxruntime. It stores nothing but its models, so `cargo xtask
/// test` runs it once, not again with the metadata in PostgreSQL.
#[tokio::test]
async fn worker_engines_match_onnxruntime() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = conformance(&browser, &studio).await;
    studio.with_log(browser.finish("worker_engines_match_onnxruntime", outcome).await)
}

#[tokio::test]
async fn prelabel_in_browser() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = run(&browser, &studio).await;
    studio.with_log(browser.finish("prelabel_in_browser", outcome).await)
}

fn shared(name: &str) -> anyhow::Result<Vec<u8>> {
    e2e::reference_model_file(name)
}

async fn register(studio: &Studio, project_id: i64, file: &str) -> anyhow::Result<api::RegisteredModel> {
    let form = reqwest::multipart::Form::new().text("role", "student").part(
        "file",
        reqwest::multipart::Part::bytes(shared(file)?).file_name(file.to_owned()),
    );
    let response = studio
        .http()
        .clone()
        .post(studio.api(&format!("/api/projects/{project_id}/models")))
        .multipart(form)
        .send()
        .await?;
    ensure!(response.status() == 201, "register {file}: {}", response.text().await?);
    Ok(response.json().await?)
}

/// The scores of the proposals matching `css`, lowest first.
async fn sorted_scores(browser: &Browser, css: &str) -> anyhow::Result<Vec<f32>> {
    let mut scores: Vec<f32> = browser
        .attributes(css, "data-score")
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    scores.sort_by(f32::total_cmp);
    Ok(scores)
}

async fn count(browser: &Browser, css: &str) -> anyhow::Result<usize> {
    Ok(browser.client.find_all(fantoccini::Locator::Css(css)).await?.len())
}

/// Runs `model` on its reference input in the browser's worker on `engine` ("cpu", "gpu", or
/// "gpu-tiled": the GPU with the tiled convolutions hardware adapters get) and holds the answer
/// to onnxruntime's output.
async fn check_conformance(
    browser: &Browser,
    model: &api::RegisteredModel,
    name: &str,
    build: &WorkerBuild,
    engine: &str,
    cores: u64,
) -> anyhow::Result<()> {
    let (choice, convolution) = match engine {
        "gpu-tiled" => ("gpu", Some("tiled")),
        other => (other, None),
    };
    let request = json!({"type": "conformance", "id": 1, "model_url": model.url, "engine": choice,
                         "gpu_convolution": convolution});
    let files = [
        ("input_url", shared(&format!("{name}.input.npy"))?),
        ("output_url", shared(&format!("{name}.output.npy"))?),
    ];
    let started = std::time::Instant::now();
    let answer = ask_worker(browser, build, request, &files).await?;
    let engine = format!("{engine} ({})", build.script);
    println!(
        "{name} on {engine}: {:.1} s in the browser",
        started.elapsed().as_secs_f64()
    );
    println!("{name} on {engine}: {answer}");
    ensure!(answer["within_tolerance"] == true, "{name} on {engine}: {answer}");
    if name.starts_with("shapes") {
        // The trained graph finds the 5 objects of its reference image, in wasm too, box for
        // box with onnxruntime's.
        ensure!(
            answer["reference_detections"] == 5 && answer["matched_detections"] == 5,
            "{name}: {answer}"
        );
    }
    let ran_on = &answer["engine"]["kind"];
    if engine.starts_with("gpu") {
        // Every reference graph, YOLO11's attention included, runs on WebGPU.
        ensure!(ran_on == "webgpu", "{name} on {engine}: {answer}");
        if convolution.is_some() {
            // Both tile sizes ran: 64-wide for the large early layers, 32-wide for the rest.
            let kernels = answer["gpu_kernels"].as_array().cloned().unwrap_or_default();
            ensure!(
                kernels.contains(&json!("conv")) && kernels.contains(&json!("conv-tile32")),
                "{name} on {engine}: {answer}"
            );
        }
        return Ok(());
    }
    ensure!(
        ran_on == "cpu"
            && answer["engine"]["name"]
                .as_str()
                .is_some_and(|n| n.contains(&build.cpu_name(cores))),
        "{name} on {engine}: {answer}"
    );
    // The convolutions ran on the worker's own register-sized kernel (models::wasm_gemm), so
    // the tolerance above holds for it, and a build that lost it is caught here.
    ensure!(
        answer["matmul_kernels"]
            .as_array()
            .is_some_and(|k| k.contains(&json!(BROWSER_MATMUL_KERNEL))),
        "{name}: the convolutions did not run on {BROWSER_MATMUL_KERNEL}: {answer}"
    );
    // Their 3×3 convolutions packed their panels by rows (models::im2col_panels), so the
    // tolerance holds for that packing too.
    ensure!(
        answer["im2col_rows"].as_u64().is_some_and(|n| n > 0),
        "{name}: no convolution packed its panels by rows: {answer}"
    );
    // Every reference graph is YOLO: a SiLU after each convolution, which runs in the
    // product's kernel as it stores its tiles (models::silu_in_products), so the tolerance
    // holds for that epilogue too.
    ensure!(
        answer["matmul_kernels"]
            .as_array()
            .is_some_and(|k| k.contains(&json!(BROWSER_SILU_MATMUL_KERNEL))),
        "{name}: no SiLU ran in a convolution's kernel: {answer}"
    );
    // YOLOv8 has only those; YOLO11 also follows its depthwise convolutions, which are no
    // matrix products, with SiLUs: they run on the element-wise kernel the build is meant to
    // pick, and are held to the tolerance there.
    let standalone_silu = if name.starts_with("yolo11") {
        json!(build.silu_kernel)
    } else {
        Value::Null
    };
    ensure!(
        answer["silu_kernel"] == standalone_silu,
        "{name}: SiLUs outside the products should run on {standalone_silu}: {answer}"
    );
    Ok(())
}

/// Sends `request` to `build`'s worker — started as the app starts it, and kept on the page —
/// with each of `files` as a blob whose URL goes in the request field it is paired with, and
/// returns the answer.
async fn ask_worker(
    browser: &Browser,
    build: &WorkerBuild,
    request: serde_json::Value,
    files: &[(&str, Vec<u8>)],
) -> anyhow::Result<serde_json::Value> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let files: serde_json::Map<String, serde_json::Value> = (files.iter())
        .map(|(field, bytes)| (field.to_string(), json!(b64.encode(bytes))))
        .collect();
    let script = r#"
        const [script, module, request, files, done] = arguments;
        const url = b64 => URL.createObjectURL(new Blob([Uint8Array.from(atob(b64), c => c.charCodeAt(0))]));
        for (const [field, b64] of Object.entries(files)) request[field] = url(b64);
        window.testWorkers = window.testWorkers || {};
        window.testWorkers[script] = window.testWorkers[script] || new Promise((resolve, reject) => {
            const worker = new Worker(script, {type: module ? 'module' : 'classic'});
            worker.onerror = e => reject(e.message || 'the worker failed to start');
            worker.onmessage = e => { if (JSON.parse(e.data).type === 'ready') resolve(worker); };
        });
        window.testWorkers[script].then(worker => new Promise((resolve, reject) => {
            worker.onmessage = e => resolve(e.data);
            worker.onerror = e => reject(e.message || 'the worker crashed');
            worker.postMessage(JSON.stringify(request));
        })).then(done, e => done(JSON.stringify({failed: String(e)})));
    "#;
    let args = vec![json!(build.script), json!(build.module), request, json!(files)];
    let answer = browser.client.execute_async(script, args).await?;
    serde_json::from_str(answer.as_str().unwrap_or("{}")).with_context(|| format!("the worker answered {answer}"))
}

/// The GPU executor's operator cases (`models::op_cases`, which `models/tests/gpu_ops.rs` runs
/// on Vulkan) in Chromium's WebGPU, whose shader compiler is stricter than naga, with both
/// convolution kernels, against tract's outputs computed here.
async fn check_operator_cases(browser: &Browser, build: &WorkerBuild) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let cases = models::op_cases::operator_cases();
    for case in &cases {
        let reference = case.reference().map_err(anyhow::Error::msg)?;
        let files = [
            ("model_url", case.onnx()),
            ("input_url", models::npy::write_f32(&case.input())),
            ("output_url", models::npy::write_f32(&reference)),
        ];
        for convolution in ["tiled", "direct"] {
            let request = json!({"type": "operator_case", "id": 1, "model_url": "", "input_url": "",
                                 "output_url": "", "gpu_convolution": convolution});
            let answer = ask_worker(browser, build, request, &files).await?;
            println!("{} ({convolution}) on WebGPU: {answer}", case.name);
            if answer["within_tolerance"] != true || answer["engine"]["kind"] != "webgpu" {
                failed.push(format!("{} ({convolution}): {answer}", case.name));
            }
        }
    }
    println!(
        "{} operator cases × 2 kernels on WebGPU: {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

/// The logical cores the page's `navigator` reports (what the threaded build sizes its pool by).
async fn cores(browser: &Browser) -> anyhow::Result<u64> {
    let cores = browser
        .client
        .execute("return navigator.hardwareConcurrency", vec![])
        .await?;
    Ok(cores.as_u64().unwrap_or(1))
}

/// Conformance inside the browser's worker: every reference graph, onnxruntime's outputs, on
/// every build and engine; then the GPU executor's operator cases.
async fn conformance(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let client = &browser.client;
    let pid = studio
        .create_project("Conformance", &["circle", "square", "triangle", "star"])
        .await?
        .id;
    // A 640 graph takes seconds in wasm (and its first load more): allow minutes per script.
    client
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(Duration::from_secs(300)),
            None,
            None,
        ))
        .await?;
    client.goto(&format!("{}/projects/{pid}", studio.url)).await?;
    browser.find("h1[data-project-id]").await?;
    let cores = cores(browser).await?;
    let mut registered = Vec::new();
    for name in MODELS {
        registered.push(register(studio, pid, &format!("{name}.onnx")).await?);
    }
    for (model, name) in registered.iter().zip(MODELS) {
        for build in &WORKER_BUILDS {
            for engine in build.engines {
                check_conformance(browser, model, name, build, engine, cores).await?;
            }
        }
    }
    // The tiled convolutions hardware adapters get go through Chromium's shader compiler (Tint,
    // stricter than naga) only here, on its software adapter, which otherwise gets the direct
    // ones. The trained graph at 320 px uses both tile sizes.
    let trained = MODELS
        .iter()
        .position(|name| name.starts_with("shapes"))
        .context("no trained graph")?;
    let gpu_build = (WORKER_BUILDS.iter().find(|build| build.engines.contains(&"gpu"))).context("no GPU build")?;
    check_conformance(
        browser,
        &registered[trained],
        MODELS[trained],
        gpu_build,
        "gpu-tiled",
        cores,
    )
    .await?;
    check_operator_cases(browser, gpu_build).await
}

async fn run(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let client = &browser.client;
    let http = studio.http().clone();
    // The trained shapes detector's classes, so its class map fills in by name.
    let project = studio
        .create_project("Pre-labels", &["circle", "square", "triangle", "star"])
        .await?;
    let pid = project.id;
    // Real photos of its data set: test_0000 holds 5 shapes (../shared/models/README.md).
    let files: Vec<(String, Vec<u8>)> = e2e::shapes_test_photos(0..6)?;
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (_, uploaded) = studio.upload(pid, &refs).await?;
    let ids: Vec<i64> = uploaded
        .as_array()
        .context("upload answer")?
        .iter()
        .filter_map(|f| f["id"].as_i64())
        .collect();
    client.goto(&format!("{}/projects/{pid}", studio.url)).await?;
    browser.find("h1[data-project-id]").await?;
    let cores = cores(browser).await?;

    // 1. A file that is not a model: a readable refusal, and the worker keeps serving.
    let refused = client
        .execute_async(
            "const [request, done] = arguments; window.distilleryWorker(JSON.stringify(request)).then(a => done('ok ' + a), e => done(String(e)));",
            vec![json!({"type": "detect", "id": 0, "model_url": format!("/api/images/{}/file", ids[0]),
                        "image_id": ids[0], "image_url": format!("/api/images/{}/file", ids[0]), "confidence": 0.25})],
        )
        .await?;
    let refused = refused.as_str().unwrap_or_default().to_owned();
    ensure!(
        refused.contains("cannot run here") && refused.contains("ONNX"),
        "{refused}"
    );

    // 2. The trained shapes detector is the student (the only one, so active), every class
    //    mapped by name.
    let student = register(studio, pid, &format!("{}.onnx", MODELS[3])).await?;
    ensure!(
        student.active && student.class_map.iter().all(Option::is_some),
        "{student:?}"
    );

    client
        .goto(&format!("{}/projects/{pid}/images/{}", studio.url, ids[0]))
        .await?;
    browser
        .find(".prelabels[data-state=ready]")
        .await
        .context("pre-labels did not arrive")?;
    let source = browser.attributes(".prelabels", "data-model-source").await?;
    ensure!(source == ["network"], "first sight downloads the model: {source:?}");
    let proposals = "rect.proposal[data-source=student]";
    let humans = ".overlay rect.box[data-source=human]";
    let engine_of = |css: &'static str| async move { browser.attributes(css, "data-engine").await };
    // Auto: Chromium's only adapter here is its software fallback, slower than the CPU path;
    // Chromium has relaxed SIMD and the page is cross-origin isolated, so the app started the
    // threaded relaxed-SIMD build of the worker.
    ensure!(
        engine_of(".prelabel-engine").await? == ["cpu"],
        "Auto keeps the CPU over a software adapter"
    );
    let on_cpu = browser.text_of(".prelabel-engine").await?;
    ensure!(
        on_cpu.contains(&WORKER_BUILDS[0].cpu_name(cores)),
        "the panel names the build: {on_cpu}"
    );
    let cpu_scores = sorted_scores(browser, proposals).await?;
    // Chosen in the panel: the student runs again on WebGPU and proposes the same boxes.
    browser.find("#prelabel-engine").await?.select_by_value("gpu").await?;
    let on_gpu = browser
        .text_of(".prelabel-engine[data-engine=webgpu]")
        .await
        .context("the GPU did not take the student")?;
    ensure!(on_gpu.contains("WebGPU"), "the panel names the engine: {on_gpu}");
    let gpu_scores = sorted_scores(browser, proposals).await?;
    ensure!(
        gpu_scores.len() == cpu_scores.len() && gpu_scores.iter().zip(&cpu_scores).all(|(g, c)| (g - c).abs() < 1e-3),
        "GPU proposals {gpu_scores:?} differ from the CPU's {cpu_scores:?}"
    );
    browser.find("#prelabel-engine").await?.select_by_value("auto").await?;
    browser.find(".prelabel-engine[data-engine=cpu]").await?;
    // Keyboard shortcuts below go to the editor, not to the select just used.
    client.execute("document.activeElement.blur()", vec![]).await?;
    let at_default = count(browser, proposals).await?;
    let scores: Vec<f64> = browser
        .attributes(proposals, "data-score")
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    ensure!(scores.iter().all(|s| *s >= 0.25), "default threshold 0.25: {scores:?}");
    // The slider filters what is shown: at its lowest every proposal shows; at a level between
    // the scores seen there, exactly those at or above it stay — counted here from the scores
    // the page showed at the lowest level, not from the editor's own filter.
    let set_threshold = |level: f32| {
        let script = format!(
            "const s = document.getElementById('proposal-threshold'); s.value = '{level}'; \
             s.dispatchEvent(new Event('input', {{bubbles: true}}));"
        );
        async move { client.execute(&script, vec![]).await.map(drop) }
    };
    set_threshold(0.05).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_low = count(browser, proposals).await?;
    let low_scores: Vec<f32> = browser
        .attributes(proposals, "data-score")
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    ensure!(
        at_low >= at_default && at_low >= 5 && low_scores.len() == at_low,
        "proposals at 0.05: {at_low} {low_scores:?} (at 0.25: {at_default})"
    );
    // A slider step (0.05) that splits the proposals, with no shown score (3 decimals) beside it.
    let level = (1..=19)
        .map(|step| step as f32 * 0.05)
        .find(|level| {
            let above = low_scores.iter().filter(|s| **s >= *level).count();
            above > 0 && above < at_low && low_scores.iter().all(|s| (s - level).abs() > 0.002)
        })
        .context(format!("no slider level splits the proposals {low_scores:?}"))?;
    let expected = low_scores.iter().filter(|s| **s >= level).count();
    set_threshold(level).await?;
    browser.wait_for_count(proposals, expected).await?;
    set_threshold(0.05).await?;
    browser.wait_for_count(proposals, at_low).await?;

    // Click accepts one; right-click dismisses one; Enter accepts the rest; undo reverts that.
    // The last one is drawn on top, so nothing covers its centre.
    let topmost = client
        .find_all(fantoccini::Locator::Css(proposals))
        .await?
        .pop()
        .context("a proposal")?;
    topmost.click().await?;
    browser.wait_for_count(humans, 1).await?;
    browser.wait_for_count(proposals, at_low - 1).await?;
    client
        .execute(
            "document.querySelector('rect.proposal').dispatchEvent(new MouseEvent('contextmenu', {bubbles: true, cancelable: true}));",
            vec![],
        )
        .await?;
    browser.wait_for_count(proposals, at_low - 2).await?;
    ensure!(count(browser, humans).await? == 1, "a dismissed proposal is not a box");
    browser.press(&[], '\u{E007}').await?; // Enter
    browser.wait_for_count(humans, at_low - 1).await?;
    browser.wait_for_count(proposals, 0).await?;
    browser.press(&[Modifier::Control], 'z').await?;
    browser.wait_for_count(humans, 1).await?;
    browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
    let saved: api::ImageBoxes = http
        .get(studio.api(&format!("/api/images/{}/boxes", ids[0])))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        saved.boxes.len() == 1 && saved.boxes[0].source == api::BoxSource::Human,
        "{saved:?}"
    );

    // 3. The other images are pre-labeled in the background and ranked.
    let mut queue: api::Queue = http
        .get(studio.api(&format!("/api/projects/{pid}/queue")))
        .send()
        .await?
        .json()
        .await?;
    for _ in 0..300 {
        if queue.unscored == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        queue = http
            .get(studio.api(&format!("/api/projects/{pid}/queue")))
            .send()
            .await?
            .json()
            .await?;
    }
    ensure!(
        queue.unscored == 0 && queue.entries.len() >= 3,
        "background pre-labeling ranked the rest: {queue:?}"
    );

    // 4. A reload takes the model from Cache Storage, not the network.
    client.refresh().await?;
    browser.find(".prelabels[data-state=ready]").await?;
    let source = browser.attributes(".prelabels", "data-model-source").await?;
    ensure!(
        source == ["cache"],
        "after a reload the model comes from the cache: {source:?}"
    );

    // 4b. The project page readies the student while the person chooses an image, so the image
    //     opened from its gallery (the same page: no reload) finds the model loaded.
    client.goto(&format!("{}/projects/{pid}", studio.url)).await?;
    browser
        .find(".page-head[data-student-ready]")
        .await
        .context("the project page did not ready the student")?;
    let ready = browser.attributes(".page-head", "data-student-ready").await?;
    ensure!(
        ready == [student.id.to_string()],
        "the project page readies the active student: {ready:?}"
    );
    browser
        .find(&format!("a.thumb[href='/projects/{pid}/images/{}']", ids[1]))
        .await?
        .click()
        .await?;
    browser.find(".prelabels[data-state=ready]").await?;
    let source = browser.attributes(".prelabels", "data-model-source").await?;
    ensure!(
        source == ["memory"],
        "the image opened from the project page finds the student loaded: {source:?}"
    );

    // 5. Scoring on the server from the project page: the page hears the job end through the
    //    job's event stream, its only news of progress. The same detector, registered again as
    //    a new version, so the server scores every image the browser scored above.
    client.goto(&format!("{}/projects/{pid}", studio.url)).await?;
    let server_scored = register(studio, pid, &format!("{}.onnx", MODELS[3])).await?;
    client.refresh().await?;
    browser.find("#score-all").await?.click().await?;
    let finished = browser.text_of(".job[data-job-state=succeeded]").await?;
    ensure!(finished.contains("succeeded"), "{finished}");

    // The browser decoded the JPEGs with Chromium's decoder, the server with the `image` crate:
    // the two rankings must still say the same thing, or the queue would rank by something else
    // than what the editor shows.
    let mut worst = 0.0f32;
    for strategy in ["least_confidence", "margin", "ratio", "entropy"] {
        for aggregation in ["max", "mean", "sum"] {
            let ranked = |model_id: i64| {
                let url = studio.api(&format!(
                    "/api/projects/{pid}/queue?strategy={strategy}&aggregation={aggregation}&model_id={model_id}"
                ));
                let http = http.clone();
                async move {
                    let queue: api::Queue = http.get(url).send().await?.json().await?;
                    let mut scores: Vec<(i64, f32)> = queue.entries.iter().map(|e| (e.image_id, e.score)).collect();
                    scores.sort_by_key(|(id, _)| *id);
                    anyhow::Ok(scores)
                }
            };
            let (in_browser, on_server) = (ranked(student.id).await?, ranked(server_scored.id).await?);
            // Every image but the one labeled above.
            let unlabeled = ids.len() - 1;
            ensure!(
                in_browser.len() == unlabeled && on_server.len() == unlabeled,
                "{strategy}/{aggregation}: the {unlabeled} unlabeled images are scored by both: \
                 {in_browser:?} {on_server:?}"
            );
            for ((a, x), (b, y)) in in_browser.iter().zip(&on_server) {
                ensure!(a == b, "{in_browser:?} {on_server:?}");
                worst = worst.max((x - y).abs());
                ensure!(
                    (x - y).abs() <= BROWSER_SERVER_SCORE_TOLERANCE,
                    "{strategy}/{aggregation}, image {a}: browser {x}, server {y}"
                );
            }
        }
    }
    println!("largest browser/server score difference: {worst:.2e}");

    // 6. "Next" in the editor follows the ranking picked in the panel. From image `from`, Next
    //    opens the top-ranked image other than `from`; pick a strategy whose answer differs from
    //    the default's, so the test sees the choice being used.
    let from = ids[1];
    let next_by = |strategy: &'static str| {
        let http = http.clone();
        let url = studio.api(&format!("/api/projects/{pid}/queue?strategy={strategy}&limit=2"));
        async move {
            let queue: api::Queue = http.get(url).send().await?.json().await?;
            anyhow::Ok(queue.entries.iter().map(|e| e.image_id).find(|id| *id != from))
        }
    };
    let default_next = next_by("least_confidence").await?;
    let mut picked = None;
    for strategy in ["margin", "ratio", "entropy", "random"] {
        let next = next_by(strategy).await?;
        if next.is_some() && next != default_next {
            picked = Some((strategy, next));
            break;
        }
    }
    let (strategy, expected) = picked.context("every strategy ranks the same image first")?;
    client.goto(&format!("{}/projects/{pid}", studio.url)).await?;
    browser.find("#queue-strategy").await?.select_by_value(strategy).await?;
    browser.find(".ranked li").await?;
    client
        .goto(&format!("{}/projects/{pid}/images/{from}", studio.url))
        .await?;
    browser.find(".prelabels[data-state=ready]").await?;
    browser.press(&[], 'd').await?;
    let wanted = format!("/projects/{pid}/images/{}", expected.unwrap_or_default());
    let mut url = String::new();
    for _ in 0..100 {
        url = client.current_url().await?.to_string();
        if url.ends_with(&wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        url.ends_with(&wanted),
        "Next with {strategy} went to {url}, not {wanted}"
    );
    Ok(())
}
