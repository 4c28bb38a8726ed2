//! The GPU executor beside tract on the same graphs, inputs and machine, natively:
//! `cargo run --release -p models --features gpu --example bench_gpu [-- MODEL…]` (reference
//! graph names, default all). Prints the first image (load, pipeline build, first run) and the
//! median of warm runs for each, the plan's dispatches per inference, and where the GPU's time
//! goes by kernel. On a software adapter (SwiftShader) the figures only prove the path works.

use std::time::Instant;

use anyhow::{Context, anyhow};
use futures_executor::block_on;
use models::conformance::{REFERENCE_MODELS, compare, reference_models_dir};
use models::gpu::GpuDevice;
use models::{Detector, npy};

const WARM_RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = if names.is_empty() {
        REFERENCE_MODELS.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let device = GpuDevice::open_blocking()?;
    println!("adapter: {} ({:?} convolutions)", device.name, device.conv);
    println!("| model | engine | first image ms | warm ms (median of {WARM_RUNS}) | dispatches | within tolerance |");
    println!("|---|---|---|---|---|---|");
    for name in names {
        let read = |suffix: &str| {
            let path = reference_models_dir().join(format!("{name}{suffix}"));
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let onnx = read(".onnx")?;
        let input = npy::read_f32(&read(".input.npy")?).map_err(|e| anyhow!(e))?;
        let expected = npy::read_f32(&read(".output.npy")?).map_err(|e| anyhow!(e))?;

        let started = Instant::now();
        let tract = Detector::load(&onnx)?;
        tract.run_raw(input.data.clone())?;
        let tract_first = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let gpu = match block_on(Detector::load_on_gpu(&onnx, &device)) {
            Ok(gpu) => Some(gpu),
            Err(why) => {
                println!("| {name} | gpu | refused: {why} | | | |");
                None
            }
        };
        if let Some(gpu) = &gpu {
            gpu.run_raw(input.data.clone())?;
        }
        let gpu_first = started.elapsed().as_secs_f64() * 1e3;

        for (engine, detector, first) in [("tract", Some(&tract), tract_first), ("gpu", gpu.as_ref(), gpu_first)] {
            let Some(detector) = detector else { continue };
            let mut times = Vec::new();
            let mut output = Vec::new();
            for _ in 0..WARM_RUNS {
                let started = Instant::now();
                output = detector.run_raw(input.data.clone())?.0;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            let report = compare(detector.info(), &output, &expected).map_err(|e| anyhow!(e))?;
            let dispatches = detector
                .gpu_model()
                .map_or("-".to_string(), |m| m.stats().dispatches.to_string());
            println!(
                "| {name} | {engine} | {first:.0} | {:.1} | {dispatches} | {} |",
                times[WARM_RUNS / 2],
                report.within_tolerance()
            );
        }
        if let Some(model) = gpu.as_ref().and_then(Detector::gpu_model) {
            let clock = Instant::now();
            let profile = block_on(model.profile(&input.data, || clock.elapsed().as_secs_f64() * 1e3))?;
            let parts: Vec<String> = (profile.iter())
                .map(|(kernel, ms, count)| format!("{kernel} {ms:.1} ms ×{count}"))
                .collect();
            println!(
                "|   | gpu time by kernel (one submission per dispatch) | {} | | | |",
                parts.join(", ")
            );
        }
    }
    Ok(())
}
