//! `cargo xtask <task>`: everything a developer (or CI) runs, written in Rust so it works the same
//! on every machine. Tools the build needs are installed from the registries on first use —
//! crates.io for Rust tools, npm for wasm-opt, apt for Chromium — never downloaded as binaries.

mod fuzz;
mod setup;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  run [-- <serve flags>]   build the web app and start the studio (e.g. -- --addr 0.0.0.0:8080 --data-dir DIR)
  test                     every check and test: fmt, clippy, web build, unit, API and browser tests
  build-web                build the web app into dist/ (release, precompressed)
  setup                    install the build tools (wasm target, Trunk, wasm-bindgen, wasm-opt)
  fuzz [SECONDS]           run every fuzz target for SECONDS each (default 300; needs nightly)
  bench [IMAGES] [folder|s3]
                           upload/label/export throughput of a release server, beside `zip -0 -r` (default 10000, folder)
  bench-browser [cpu|gpu]  in-browser detector latency of our worker beside onnxruntime-web (yolov8n 320/640; default both)
  bench-teacher [IMAGES]   teacher job images/s (1 and all threads) beside onnxruntime in Python (default 500)
  bench-live [ANNOTATORS] [SECONDS] [REVIEWERS] [REPLICAS]
                           people on one project at once over the live channel: latency, ops/s, RSS, CPU, lost events (default 200, 60, 10, 1;
                           more replicas share one PostgreSQL)
  bench-workers [IMAGES]   teacher job images/s with 1 and 2 `distillery worker`s on PostgreSQL + S3 (default 200)
  bench-train [EPOCHS] [IMGSZ] [TRAIN_IMAGES]
                           student training on ../shared/models/shapes beside Ultralytics trained alike (default 30, 320, all 400)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("setup") => setup::build_tools(&root).map(drop),
        Some("build-web") => web::build(&root).map(drop),
        Some("run") => run_studio(&root, &args[1..]),
        Some("test") => test(&root),
        Some("bench") => bench(
            &root,
            args.get(1).map(String::as_str).unwrap_or("10000"),
            args.get(2).map(String::as_str).unwrap_or("folder"),
        ),
        Some("bench-browser") => bench_browser(&root, args.get(1).map(String::as_str).unwrap_or("all")),
        Some("bench-teacher") => bench_teacher(&root, args.get(1).map(String::as_str).unwrap_or("500")),
        Some("bench-live") => bench_live(&root, &args[1..]),
        Some("bench-workers") => bench_workers(&root, args.get(1).map(String::as_str).unwrap_or("200")),
        Some("bench-train") => bench_train(
            args.get(1).map(String::as_str).unwrap_or("30"),
            args.get(2).map(String::as_str).unwrap_or("320"),
            args.get(3).map(String::as_str).unwrap_or(""),
        ),
        Some("fuzz") => {
            let seconds = args
                .get(1)
                .map(|s| s.parse())
                .transpose()
                .context("SECONDS must be a whole number")?;
            fuzz::run(&root, seconds.unwrap_or(300))
        }
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// `cargo xtask run`: web app, then the release server in the foreground.
fn run_studio(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let serve_flags: Vec<&String> = args.iter().skip_while(|a| *a == "--").collect();
    web::build(root)?;
    let mut command = Command::new(cargo());
    command
        .args([
            "run",
            "--release",
            "--package",
            "backend",
            "--bin",
            "distillery",
            "--",
            "serve",
        ])
        .args(serve_flags)
        .env("DISTILLERY_WEB_DIR", root.join("dist"));
    replace_process(command)
}

/// `cargo xtask test`: what CI runs, in the order that fails fastest.
fn test(root: &Path) -> anyhow::Result<()> {
    let tools = setup::build_tools(root)?;
    let browser = setup::browser()?;
    let onnxruntime = setup::onnxruntime_library()?;
    setup::postgresql()?;
    step(
        "cargo fmt --check",
        Command::new(cargo()).args(["fmt", "--all", "--check"]),
    )?;
    // The web app build also proves that `api` and `models` build for wasm32-unknown-unknown,
    // and lints them, the app and the worker as it builds them (`Lint::Clippy`).
    let dist = web::build_with(root, &tools, web::Lint::Clippy)?;
    // The native crates are linted the same way while they are built for the tests. The same
    // flags on the test run, so it reuses that build. One `cargo test` selection for both, so
    // cargo resolves the dependencies' features once and compiles nothing twice.
    let native = |command: &mut Command| {
        let command = command.args([
            "--workspace",
            "--exclude",
            "frontend",
            "--exclude",
            "inference-worker",
            "--locked",
        ]);
        lint_while_compiling(command, &clippy_driver());
    };
    let mut build = Command::new(cargo());
    build.args(["test", "--no-run"]);
    native(&mut build);
    step(
        "clippy and build the native crates, the server and the tests",
        &mut build,
    )?;
    let bin = target_dir(root)?.join("debug").join("distillery");
    if !bin.is_file() {
        bail!("the test build made no {}", bin.display());
    }
    let tests = |command: &mut Command| {
        command
            .env("DISTILLERY_BIN", &bin)
            .env("DISTILLERY_WEB_DIR", &dist)
            .env("CHROMEDRIVER", &browser.chromedriver)
            .env("CHROMIUM", &browser.chromium)
            .env("VK_ICD_FILENAMES", &browser.vulkan_icd)
            .env("DISTILLERY_TEST_F16_VULKAN_ICD", &browser.f16_vulkan_icd)
            .env("DISTILLERY_TEST_ONNXRUNTIME", &onnxruntime);
    };
    let mut all = Command::new(cargo());
    all.arg("test");
    native(&mut all);
    tests(&mut all);
    step("tests (unit, API, parser mutations, browser)", &mut all)?;
    // The same end-to-end suite with every studio's metadata in PostgreSQL (a server the tests
    // start, one database per studio): both engines serve the same queries. Less the browser
    // worker's conformance, minutes of wasm and software WebGPU that store nothing but models.
    let mut on_postgres = Command::new(cargo());
    on_postgres.args(["test", "--test", "e2e"]);
    native(&mut on_postgres);
    tests(&mut on_postgres);
    on_postgres.args(["--", "--skip", "prelabel_in_browser::worker_engines_match_onnxruntime"]);
    step(
        "end-to-end tests again, metadata in PostgreSQL",
        on_postgres.env("DISTILLERY_TEST_DATABASE", "postgres"),
    )
}

/// Makes a cargo build lint the workspace's own crates as it compiles them, warnings denied:
/// clippy's driver in place of rustc for them, which is what `cargo clippy` does during a
/// check. The dependencies are then compiled once, not checked for clippy and built again.
/// `driver` is the clippy of the toolchain that builds (`clippy_driver` for ours).
pub(crate) fn lint_while_compiling<'c>(command: &'c mut Command, driver: &Path) -> &'c mut Command {
    command
        .env("RUSTC_WORKSPACE_WRAPPER", driver)
        .env("CLIPPY_ARGS", "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__")
}

/// Clippy's compiler driver from the toolchain that runs us (beside its `cargo`), else the
/// rustup proxy on the PATH.
pub(crate) fn clippy_driver() -> PathBuf {
    let beside_cargo = Path::new(&cargo()).with_file_name("clippy-driver");
    if beside_cargo.is_file() {
        beside_cargo
    } else {
        PathBuf::from("clippy-driver")
    }
}

/// `cargo xtask bench`: the dataset benchmark against a release server, its files in the data
/// folder or an S3 bucket.
fn bench(root: &Path, images: &str, store: &str) -> anyhow::Result<()> {
    let bin = release_server(root)?;
    step(
        "bench_dataset",
        bench_binary("bench_dataset", &[images, store])
            .env("DISTILLERY_BIN", bin)
            .env("DISTILLERY_WEB_DIR", root.join("dist")),
    )
}

/// `cargo xtask bench-live`: simulated annotators and reviewers on one project, against a
/// release server on loopback.
fn bench_live(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let bin = release_server(root)?;
    step(
        "bench_live",
        bench_binary("bench_live", args)
            .env("DISTILLERY_BIN", bin)
            .env("DISTILLERY_WEB_DIR", root.join("dist")),
    )
}

/// `cargo xtask bench-workers`: a teacher job shared by release `distillery worker`s.
fn bench_workers(root: &Path, images: &str) -> anyhow::Result<()> {
    setup::postgresql()?;
    let bin = release_server(root)?;
    step(
        "bench_workers",
        bench_binary("bench_workers", &[images])
            .env("DISTILLERY_BIN", bin)
            .env("DISTILLERY_WEB_DIR", root.join("dist")),
    )
}

/// `cargo xtask bench-browser`: our inference worker beside onnxruntime-web in one Chromium.
fn bench_browser(root: &Path, engines: &str) -> anyhow::Result<()> {
    if !["cpu", "gpu", "all"].contains(&engines) {
        bail!("bench-browser measures cpu, gpu or (by default) both, not {engines:?}");
    }
    let browser = setup::browser()?;
    let ort_web = setup::onnxruntime_web()?;
    let dist = web::build(root)?;
    let bin = release_server(root)?;
    step(
        "bench_browser",
        bench_binary("bench_browser", &[engines])
            .env("DISTILLERY_BIN", bin)
            .env("DISTILLERY_WEB_DIR", dist)
            .env("ORT_WEB_DIR", ort_web)
            .env("CHROMEDRIVER", &browser.chromedriver)
            .env("CHROMIUM", &browser.chromium)
            // Chromium's WebGPU on its own SwiftShader, as in the tests, whatever other Vulkan
            // drivers the machine has (lavapipe, for the f16 tests).
            .env("VK_ICD_FILENAMES", &browser.vulkan_icd),
    )
}

/// `cargo xtask bench-teacher`: teacher jobs of a release `distillery` beside onnxruntime.
fn bench_teacher(root: &Path, images: &str) -> anyhow::Result<()> {
    let python = setup::onnxruntime_python()?;
    let library = setup::onnxruntime_library()?;
    let bin = release_server(root)?;
    step(
        "bench_teacher",
        bench_binary("bench_teacher", &[images])
            .env("DISTILLERY_BIN", bin)
            .env("ORT_PYTHON", python)
            .env("ORT_LIBRARY", library),
    )
}

/// Builds the release `distillery` the benchmarks run against; its path.
fn release_server(root: &Path) -> anyhow::Result<PathBuf> {
    step(
        "build the release server",
        Command::new(cargo()).args(["build", "--release", "--locked", "--package", "backend"]),
    )?;
    Ok(target_dir(root)?.join("release").join("distillery"))
}

/// `cargo run --release` of one of the `e2e` crate's benchmark binaries, with its arguments.
fn bench_binary(name: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
    let mut command = Command::new(cargo());
    command
        .args(["run", "--release", "--locked", "--package", "e2e", "--bin", name, "--"])
        .args(args);
    command
}

/// `cargo xtask bench-train`: the student trained from scratch on the shapes set (release,
/// every core), its images/s and time to mAP50 0.5 / 0.9 beside Ultralytics trained the same way
/// in the same run.
///
/// With `DEVICE=gpu`, both train on the CUDA GPU: ours through the `libtorch` feature, built
/// against the PyTorch of Ultralytics' environment.
fn bench_train(epochs: &str, imgsz: &str, train_images: &str) -> anyhow::Result<()> {
    let python = setup::ultralytics_python()?;
    let mut command = Command::new(cargo());
    command.env("ULTRALYTICS_PYTHON", &python).args([
        "run",
        "--release",
        "--locked",
        "--package",
        "train",
        "--example",
        "bench_train",
    ]);
    if std::env::var("DEVICE").is_ok_and(|d| d == "gpu") {
        let torch_lib = setup::output(Command::new(&python).args([
            "-c",
            "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ]))?;
        let bin = python.parent().context("the environment's python has no folder")?;
        let path = std::env::join_paths(
            std::iter::once(bin.to_owned()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )?;
        command
            .args(["--features", "libtorch"])
            .env("LIBTORCH_USE_PYTORCH", "1")
            .env("LIBTORCH_BYPASS_VERSION_CHECK", "1")
            .env("VIRTUAL_ENV", bin.parent().unwrap_or(bin))
            .env("PATH", path)
            .env("LD_LIBRARY_PATH", torch_lib.trim());
    }
    step(
        "bench_train",
        command.args(["--", "", epochs, "16", imgsz, train_images]),
    )
}

/// Runs one step, echoing it; fails with the step's name.
pub(crate) fn step(name: &str, command: &mut Command) -> anyhow::Result<()> {
    eprintln!("\n==> {name}");
    let started = std::time::Instant::now();
    let status = command.status().with_context(|| format!("cannot start {name}"))?;
    // Every step's duration in the log: CI's 60-minute budget is spent step by step.
    let took = started.elapsed().as_secs();
    if !status.success() {
        bail!("{name} failed ({status}) after {took} s");
    }
    eprintln!("<== {name}: {took} s");
    Ok(())
}

/// The `cargo` that runs us (so the same toolchain builds everything).
pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_owned)
        .context("xtask is not inside the workspace")
}

/// Where cargo puts build output (honours `CARGO_TARGET_DIR` and config).
fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("cannot read cargo metadata")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata names no target directory")
}

#[cfg(unix)]
fn replace_process(mut command: Command) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    // exec, so Ctrl-C and SIGTERM reach the server directly and it shuts down gracefully.
    Err(command.exec()).context("cannot start the server")
}

#[cfg(not(unix))]
fn replace_process(mut command: Command) -> anyhow::Result<()> {
    let status = command.status().context("cannot start the server")?;
    if !status.success() {
        bail!("the server exited with {status}");
    }
    Ok(())
}
