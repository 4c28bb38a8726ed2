//! Where a detector run spends its time, natively, per tract operator kind:
//! `cargo run --release -p models --example profile_ops -- MODEL.onnx [RUNS]`.
//! (`cargo xtask bench-browser` prints the same table for the browser worker.)
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: profile_ops MODEL.onnx [RUNS]"))?;
    let runs: u32 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let detector = models::Detector::load(&std::fs::read(path)?).map_err(|e| anyhow::anyhow!(e.0))?;
    let side = detector.info().input_size_px as usize;
    let input = vec![0.5f32; 3 * side * side];
    let clock = Instant::now();
    let now_ms = || clock.elapsed().as_secs_f64() * 1e3;
    detector.run_raw(input.clone()).map_err(|e| anyhow::anyhow!(e.0))?; // warm-up
    let started = now_ms();
    for _ in 0..runs {
        detector.run_raw(input.clone()).map_err(|e| anyhow::anyhow!(e.0))?;
    }
    println!(
        "{path}: {:.1} ms per run ({runs} runs)",
        (now_ms() - started) / f64::from(runs)
    );
    println!("matrix kernels: {}", detector.matmul_kernels().join(", "));
    for op in detector.profile(input, now_ms).map_err(|e| anyhow::anyhow!(e.0))? {
        println!("{:>9.2} ms {:>4} × {}", op.ms, op.count, op.operator);
    }
    Ok(())
}
