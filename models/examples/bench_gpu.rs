//! The GPU executor beside tract on the same graphs, inputs and machine, natively:
//! `cargo run --release -p models --features gpu --example bench_gpu [-- MODEL…]` (reference
//! graph names, default all). Prints the first image (load, pipeline build, first run) and the
//! median of warm runs for each, the plan's dispatches per inference, and where the GPU's time
//! goes by kernel; f16 plans beside f32 ones where the adapter has `shader-f16`. On a software
//! adapter (SwiftShader, lavapipe) the figures only prove the path works.

use std::time::Instant;

use anyhow::{Context, anyhow};
use futures_executor::block_on;
use models::conformance::{REFERENCE_MODELS, compare, reference_models_dir};
use models::gpu::{GpuDevice, Precision};
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
    // f16 plans beside the f32 ones where the adapter has shader-f16.
    let precisions: Vec<Precision> = if device.has_f16() {
        vec![Precision::F32, Precision::F16]
    } else {
        vec![Precision::F32]
    };
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

        // (engine, detector, first image ms: load, pipeline build and the first run)
        let mut engines: Vec<(String, Detector, f64)> = Vec::new();
        let started = Instant::now();
        let tract = Detector::load(&onnx)?;
        tract.run_raw(input.data.clone())?;
        engines.push(("tract".into(), tract, started.elapsed().as_secs_f64() * 1e3));
        for precision in &precisions {
            let device = device.clone().with_precision(*precision)?;
            let engine = format!("gpu {precision:?}");
            let started = Instant::now();
            match block_on(Detector::load_on_gpu(&onnx, &device)) {
                Ok(gpu) => {
                    gpu.run_raw(input.data.clone())?;
                    engines.push((engine, gpu, started.elapsed().as_secs_f64() * 1e3));
                }
                Err(why) => println!("| {name} | {engine} | refused: {why} | | | |"),
            }
        }

        for (engine, detector, first) in &engines {
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
                report.within(detector.tolerance())
            );
        }
        for (engine, detector, _) in &engines {
            let Some(model) = detector.gpu_model() else { continue };
            let clock = Instant::now();
            let profile = block_on(model.profile(&input.data, || clock.elapsed().as_secs_f64() * 1e3))?;
            let parts: Vec<String> = (profile.iter())
                .map(|(kernel, ms, count)| format!("{kernel} {ms:.1} ms ×{count}"))
                .collect();
            println!(
                "|   | {engine} time by kernel (one submission per dispatch) | {} | | | |",
                parts.join(", ")
            );
        }
    }
    Ok(())
}
