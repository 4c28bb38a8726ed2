//! Building the web app: Trunk (release) into `dist/`, then a `.gz` beside each text and wasm
//! file so the server sends them compressed without compressing on every request.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::setup::{self, BuildTools};
use crate::step;

const PRECOMPRESSED: [&str; 5] = ["html", "js", "wasm", "css", "svg"];

/// The inference worker's builds beside the one Trunk makes (wasm SIMD128, one thread). Trunk
/// builds every asset with the same RUSTFLAGS, so these are made here, each in a target folder
/// of its own (other flags in the main one would rebuild it each time), then wasm-bindgen, then
/// a loader the app starts (`frontend/src/inference.rs` picks the build per browser).
struct WorkerBuild {
    /// `<name>.js`, `<name>_bg.wasm` and `<name>_loader.js` in `dist/`.
    name: &'static str,
    rustflags: &'static str,
    /// Rebuilds the standard library with these flags (nightly's `-Z build-std`): wasm atomics
    /// need a std compiled for them.
    build_std: bool,
    features: &'static str,
    /// wasm-bindgen's `--target`: `no-modules` as Trunk does for the worker, `web` (an ES module)
    /// where the code needs `import.meta`.
    bindgen_target: &'static str,
    loader: &'static str,
}

/// Relaxed SIMD: the matrix kernel's multiply and add become one `relaxed_madd`.
const RELAXED_SIMD_WORKER: WorkerBuild = WorkerBuild {
    name: "worker_relaxed",
    rustflags: "-Ctarget-feature=+simd128,+relaxed-simd",
    build_std: false,
    features: "",
    bindgen_target: "no-modules",
    loader: "importScripts(\"./worker_relaxed.js\");wasm_bindgen(\"./worker_relaxed_bg.wasm\");",
};

/// Relaxed SIMD on several threads: atomics, and a memory the pool's Web Workers share
/// (wasm-bindgen-rayon, whose workers import the module by URL, hence an ES module worker). Since
/// rust#147225 the linker is asked for shared memory explicitly, with the TLS symbols
/// wasm-bindgen's thread set-up needs; the maximum is the non-shared build's 4 GiB, not the
/// linker's 1 GiB default for shared memory.
const THREADED_WORKER: WorkerBuild = WorkerBuild {
    name: "worker_threads",
    rustflags: concat!(
        "-Ctarget-feature=+simd128,+relaxed-simd,+atomics,+bulk-memory,+mutable-globals",
        "\x1f-Clink-arg=--shared-memory\x1f-Clink-arg=--import-memory\x1f-Clink-arg=--max-memory=4294967296",
        "\x1f-Clink-arg=--export=__wasm_init_tls\x1f-Clink-arg=--export=__tls_size",
        "\x1f-Clink-arg=--export=__tls_align\x1f-Clink-arg=--export=__tls_base",
    ),
    build_std: true,
    features: "threads",
    bindgen_target: "web",
    loader: "import init from \"./worker_threads.js\";init();",
};

/// Whether a web build also lints the workspace's crates it compiles.
#[derive(Clone, Copy, PartialEq)]
pub enum Lint {
    /// A plain build: what `run` and the benchmarks make, which a newer clippy's lints must not
    /// stop.
    No,
    /// Clippy, warnings denied, on every build of the app and the worker (what `test` makes):
    /// each crate is linted with the target features and `threads` feature it ships with.
    Clippy,
}

/// Installs what is missing, then builds. Returns the `dist/` folder.
pub fn build(root: &Path) -> anyhow::Result<PathBuf> {
    let tools = setup::build_tools(root)?;
    build_with(root, &tools, Lint::No)
}

/// Builds the app with already-installed tools. Returns the `dist/` folder.
pub fn build_with(root: &Path, tools: &BuildTools, lint: Lint) -> anyhow::Result<PathBuf> {
    let mut trunk = Command::new("trunk");
    trunk
        .args(["build", "--release"])
        .env("PATH", &tools.path)
        .current_dir(root);
    if lint == Lint::Clippy {
        crate::lint_while_compiling(&mut trunk, &crate::clippy_driver());
    }
    step("trunk build --release", &mut trunk)?;
    let dist = root.join("dist");
    let target = crate::target_dir(root)?;
    for worker in [RELAXED_SIMD_WORKER, THREADED_WORKER] {
        build_worker(root, tools, &target, &dist, &worker, lint)?;
    }
    let mut wasm_sizes = Vec::new();
    for entry in std::fs::read_dir(&dist).context("trunk made no dist/")? {
        let path = entry?.path();
        let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !PRECOMPRESSED.contains(&extension) {
            continue;
        }
        let raw = std::fs::read(&path)?;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&raw)?;
        let gzipped = encoder.finish()?;
        let mut gz_path = path.clone().into_os_string();
        gz_path.push(".gz");
        std::fs::write(&gz_path, &gzipped)?;
        if extension == "wasm" {
            wasm_sizes.push((
                path.file_name().unwrap_or_default().to_owned(),
                raw.len(),
                gzipped.len(),
            ));
        }
    }
    for (name, raw, gzipped) in wasm_sizes {
        eprintln!(
            "{}: {} KiB, {} KiB gzipped",
            name.to_string_lossy(),
            raw / 1024,
            gzipped / 1024
        );
    }
    Ok(dist)
}

fn build_worker(
    root: &Path,
    tools: &BuildTools,
    target_root: &Path,
    dist: &Path,
    build: &WorkerBuild,
    lint: Lint,
) -> anyhow::Result<()> {
    let target = target_root.join(build.name);
    let mut cargo = if build.build_std {
        let mut nightly = Command::new("rustup");
        nightly
            .args(["run", "nightly", "cargo", "build", "-Z", "build-std=panic_abort,std"])
            // The standard library's own dependencies come from crates.io: not offline.
            .env_remove("RUSTC")
            .env_remove("RUSTDOC")
            .env_remove("RUSTUP_TOOLCHAIN");
        nightly
    } else {
        let mut stable = Command::new(crate::cargo());
        stable.args(["build", "--offline"]);
        stable
    };
    cargo
        .args([
            "--locked",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-worker",
        ])
        .args(["--package", "inference-worker", "--bin", "worker"])
        .args(["--features", build.features])
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_ENCODED_RUSTFLAGS", build.rustflags)
        .current_dir(root);
    if lint == Lint::Clippy {
        // The clippy of the compiler that builds: nightly's for the threaded worker.
        let driver = if build.build_std {
            PathBuf::from(
                setup::output(Command::new("rustup").args(["which", "--toolchain", "nightly", "clippy-driver"]))?
                    .trim(),
            )
        } else {
            crate::clippy_driver()
        };
        crate::lint_while_compiling(&mut cargo, &driver);
    }
    step(&format!("cargo build (inference worker: {})", build.name), &mut cargo)?;
    let wasm = target
        .join("wasm32-unknown-unknown")
        .join("wasm-worker")
        .join("worker.wasm");
    step(
        &format!("wasm-bindgen (inference worker: {})", build.name),
        Command::new("wasm-bindgen")
            .args([
                "--target",
                build.bindgen_target,
                "--no-typescript",
                "--out-name",
                build.name,
            ])
            // Symbol names: half of the threaded build (its std is compiled here, names kept),
            // and only debuggers read them.
            .arg("--remove-name-section")
            .arg("--out-dir")
            .arg(dist)
            .arg(&wasm)
            .env("PATH", &tools.path),
    )?;
    std::fs::write(dist.join(format!("{}_loader.js", build.name)), build.loader)
        .with_context(|| format!("cannot write the loader of {}", build.name))
}
