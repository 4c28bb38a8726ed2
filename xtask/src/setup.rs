//! Installs the tools the build and the tests need, from the registries, when missing:
//! the wasm32 target and nightly's `rust-src` (rustup), Trunk and wasm-bindgen-cli (crates.io), wasm-opt (npm package
//! `binaryen`, since Debian's is too old and breaks wasm-bindgen's output), Chromium and
//! chromedriver (Debian packages).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{cargo, step};

const TRUNK_VERSION: &str = "0.21.14";
const BINARYEN_VERSION: &str = "132";

/// Tools for building the web app.
pub struct BuildTools {
    /// `PATH` with the installed tools first, for running Trunk.
    pub path: OsString,
}

/// The browser pair the end-to-end tests drive.
pub struct BrowserTools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    /// The ICD file of Chromium's SwiftShader Vulkan driver: the software GPU the executor's
    /// conformance tests run on.
    pub vulkan_icd: PathBuf,
    /// The ICD file of Mesa's lavapipe, a software Vulkan driver with `shader-f16`, which
    /// SwiftShader lacks: the executor's f16 plans are tested on it.
    pub f16_vulkan_icd: PathBuf,
}

/// Makes sure the wasm toolchain is installed and returns the `PATH` that finds it.
pub fn build_tools(root: &Path) -> anyhow::Result<BuildTools> {
    let cargo_bin = cargo_home().join("bin");
    let binaryen_dir = cache_dir().join(format!("binaryen-{BINARYEN_VERSION}"));
    let binaryen_bin = binaryen_dir.join("node_modules").join(".bin");
    let mut entries = vec![binaryen_bin.clone(), cargo_bin];
    entries.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let path = std::env::join_paths(entries).context("cannot build PATH")?;
    let probe = |tool: &str| version_of(tool, &path);

    let installed_targets = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add the wasm32 target")?;
    if !installed_targets
        .lines()
        .any(|line| line.trim() == "wasm32-unknown-unknown")
    {
        step(
            "rustup target add wasm32-unknown-unknown",
            Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
        )?;
    }

    // The threaded worker rebuilds the standard library with wasm atomics: nightly's build-std,
    // which compiles it from the toolchain's `rust-src`.
    let nightly_components =
        output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"]))
            .context("the threaded inference worker needs a nightly toolchain (rustup toolchain install nightly)")?;
    if !nightly_components.lines().any(|line| line.trim() == "rust-src") {
        step(
            "rustup component add rust-src --toolchain nightly",
            Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
        )?;
    }

    if !probe("trunk").is_some_and(|v| v.contains(TRUNK_VERSION)) {
        step(
            &format!("install Trunk {TRUNK_VERSION} from crates.io (a few minutes, once)"),
            cargo_install().args(["trunk", "--locked", "--version", TRUNK_VERSION]),
        )?;
    }

    let bindgen_version = locked_version(root, "wasm-bindgen")?;
    if !probe("wasm-bindgen").is_some_and(|v| v.split_whitespace().any(|w| w == bindgen_version)) {
        // Not --locked: one of its locked dependency versions is missing from the registry mirror.
        step(
            &format!("install wasm-bindgen-cli {bindgen_version} from crates.io (a few minutes, once)"),
            cargo_install().args(["wasm-bindgen-cli", "--force", "--version", &bindgen_version]),
        )?;
    }
    let trunk_config = std::fs::read_to_string(root.join("Trunk.toml")).context("cannot read Trunk.toml")?;
    if !trunk_config.contains(&format!("wasm_bindgen = \"{bindgen_version}\"")) {
        bail!("Trunk.toml must pin wasm_bindgen = \"{bindgen_version}\", the version in Cargo.lock");
    }

    if !binaryen_bin.join("wasm-opt").is_file() {
        std::fs::create_dir_all(&binaryen_dir)?;
        step(
            &format!("install wasm-opt (npm package binaryen@{BINARYEN_VERSION})"),
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&binaryen_dir)
                .arg(format!("binaryen@{BINARYEN_VERSION}")),
        )?;
    }
    if !probe("wasm-opt").is_some_and(|v| v.contains(&format!("version {BINARYEN_VERSION}"))) {
        bail!(
            "wasm-opt from {} does not report version {BINARYEN_VERSION}",
            binaryen_bin.display()
        );
    }
    Ok(BuildTools { path })
}

/// `cargo install` for a build tool, with a quick release profile: Trunk's own asks for fat LTO
/// and one codegen unit, which costs about ten minutes on two cores for a program that only runs
/// other programs; none of these tools is hot enough for opt-level 3 to matter.
pub(crate) fn cargo_install() -> Command {
    let mut command = Command::new(cargo());
    command
        .arg("install")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1");
    command
}

/// The onnxruntime-web release `cargo xtask bench-browser` compares against.
const ORT_WEB_VERSION: &str = "1.30.0";

/// Installs onnxruntime-web from npm (once) and returns its `dist/` folder.
pub fn onnxruntime_web() -> anyhow::Result<PathBuf> {
    let prefix = cache_dir().join(format!("onnxruntime-web-{ORT_WEB_VERSION}"));
    let dist = prefix.join("node_modules").join("onnxruntime-web").join("dist");
    if !dist.join("ort.wasm.min.mjs").is_file() {
        std::fs::create_dir_all(&prefix)?;
        step(
            &format!("install onnxruntime-web@{ORT_WEB_VERSION} (npm)"),
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(format!("onnxruntime-web@{ORT_WEB_VERSION}")),
        )?;
    }
    Ok(dist)
}

/// The onnxruntime (Python, PyPI) release `cargo xtask bench-teacher` compares against.
const ORT_PYTHON_VERSION: &str = "1.32.0";

/// A Python virtual environment with onnxruntime, Pillow and numpy (created once); returns its
/// `python`.
pub fn onnxruntime_python() -> anyhow::Result<PathBuf> {
    python_environment(
        &format!("onnxruntime-python-{ORT_PYTHON_VERSION}"),
        "onnxruntime, PIL, numpy",
        &[&format!("onnxruntime=={ORT_PYTHON_VERSION}"), "pillow", "numpy"],
    )
}

/// The Ultralytics (PyPI) release `cargo xtask bench-train` trains beside ours.
const ULTRALYTICS_VERSION: &str = "8.4.190";
/// Its PyTorch, pinned: the student's `libtorch` feature compiles against this same install
/// (tch 0.22's bindings were checked to build and run against 2.11).
const TORCH_VERSION: &str = "2.11.0";
const TORCHVISION_VERSION: &str = "0.26.0";

/// A Python virtual environment with Ultralytics and its torch (created once; PyPI's torch wheel
/// brings its CUDA libraries, about 6 GB); returns its `python`.
pub fn ultralytics_python() -> anyhow::Result<PathBuf> {
    python_environment(
        &format!("ultralytics-python-{ULTRALYTICS_VERSION}-torch-{TORCH_VERSION}"),
        "ultralytics, torch",
        &[
            &format!("ultralytics=={ULTRALYTICS_VERSION}"),
            &format!("torch=={TORCH_VERSION}"),
            &format!("torchvision=={TORCHVISION_VERSION}"),
        ],
    )
}

/// The virtual environment `name` in the cache, created and given `packages` from PyPI unless
/// `modules` already import there; returns its `python`.
fn python_environment(name: &str, modules: &str, packages: &[&str]) -> anyhow::Result<PathBuf> {
    let venv = cache_dir().join(name);
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        step(
            &format!("create the Python virtual environment {name}"),
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )?;
    }
    let ready = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        step(
            &format!("install {} (PyPI, once)", packages.join(", ")),
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(packages),
        )?;
    }
    Ok(python)
}

/// `libonnxruntime.so` from the PyPI wheel in [`onnxruntime_python`]'s environment: what the
/// tests of the server's onnxruntime engine load (`--onnxruntime`).
pub fn onnxruntime_library() -> anyhow::Result<PathBuf> {
    let python = onnxruntime_python()?;
    let package = output(Command::new(&python).args([
        "-c",
        "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
    ]))?;
    let capi = PathBuf::from(package.trim()).join("capi");
    let found = std::fs::read_dir(&capi)
        .with_context(|| format!("cannot list {}", capi.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        });
    found.with_context(|| format!("the onnxruntime wheel has no libonnxruntime.so in {}", capi.display()))
}

/// Makes sure Debian's Chromium and chromedriver are installed (their versions always match),
/// and the Vulkan loader, through which the GPU executor's tests reach the SwiftShader Vulkan
/// driver that Chromium ships — and Mesa's lavapipe for the f16 plans.
pub fn browser() -> anyhow::Result<BrowserTools> {
    let tools = || BrowserTools {
        chromium: PathBuf::from("/usr/bin/chromium"),
        chromedriver: PathBuf::from("/usr/bin/chromedriver"),
        vulkan_icd: PathBuf::from("/usr/lib/chromium/vk_swiftshader_icd.json"),
        f16_vulkan_icd: PathBuf::from(format!(
            "/usr/share/vulkan/icd.d/lvp_icd.{}.json",
            std::env::consts::ARCH
        )),
    };
    let present = |t: &BrowserTools| {
        [&t.chromium, &t.chromedriver, &t.vulkan_icd, &t.f16_vulkan_icd]
            .iter()
            .all(|file| file.is_file())
            && vulkan_loader_installed()
    };
    if present(&tools()) {
        return Ok(tools());
    }
    apt_install(
        "install Chromium and chromedriver (Debian packages)",
        &["chromium", "chromium-driver", "libvulkan1", "mesa-vulkan-drivers"],
    )?;
    if !present(&tools()) {
        bail!("chromium, chromedriver, the Vulkan loader or lavapipe is still missing after installing them");
    }
    Ok(tools())
}

/// Makes sure Debian's PostgreSQL server programs are installed: the e2e suite runs a second
/// time with the studios' metadata in a PostgreSQL server it starts itself
/// (`tests/src/postgres.rs`, which finds them in `/usr/lib/postgresql/<major>/bin`).
pub fn postgresql() -> anyhow::Result<()> {
    let installed = || {
        std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .any(|version| version.path().join("bin/initdb").is_file())
    };
    if installed() {
        return Ok(());
    }
    apt_install("install PostgreSQL (Debian package)", &["postgresql"])?;
    if !installed() {
        bail!("PostgreSQL's initdb is still missing after installing the postgresql package");
    }
    Ok(())
}

/// `apt-get install` of Debian packages, through `sudo -n` unless this runs as root.
fn apt_install(what: &str, packages: &[&str]) -> anyhow::Result<()> {
    let as_root = output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if as_root {
            Command::new("apt-get")
        } else {
            Command::new("sudo")
        };
        if !as_root {
            command.args(["-n", "apt-get"]);
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    step("apt-get update", &mut apt(&["update"]))?;
    let mut install = apt(&["install", "-y", "--no-install-recommends"]);
    install.args(packages);
    step(what, &mut install)
}

/// Whether `libvulkan.so.1` (Debian's `libvulkan1`) is in a multiarch library folder.
fn vulkan_loader_installed() -> bool {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.path().join("libvulkan.so.1").is_file())
}

/// The version of `package` recorded in Cargo.lock.
fn locked_version(root: &Path, package: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("cannot read Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"")
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    bail!("{package} is not in Cargo.lock")
}

fn version_of(tool: &str, path: &OsString) -> Option<String> {
    output(Command::new(tool).arg("--version").env("PATH", path)).ok()
}

pub(crate) fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command.output()?;
    if !out.status.success() {
        bail!("{command:?} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"))
        .join("distillery")
}
