//! The GPU executor operator by operator, against tract on the CPU: the cases in
//! `models::op_cases` (the browser test runs the same list in Chromium's WebGPU), loaded from
//! their ONNX bytes as the worker loads them, each on both convolution kernels, on whatever
//! adapter the machine offers (SwiftShader in CI), and in f16 where `f16_driver` says.
#![cfg(all(feature = "gpu", feature = "op-cases", not(target_arch = "wasm32")))]

mod f16_driver;

use anyhow::{anyhow, ensure};
use futures_executor::block_on;
use models::conformance::{Tolerance, compare_values};
use models::gpu::{ConvKernel, GpuDevice, GpuModel, Precision};
use models::op_cases::{OperatorCase, operator_cases};

/// Runs `case` on the GPU with each convolution kernel and holds it to tract's output.
fn check(case: &OperatorCase, device: &GpuDevice) -> anyhow::Result<()> {
    let name = case.name;
    let reference = case.reference().map_err(|e| anyhow!(e))?;
    let (onnx, input) = (case.onnx(), case.input());
    for conv in [ConvKernel::Tiled, ConvKernel::Direct] {
        let device = device.clone().with_conv(conv);
        let model = block_on(GpuModel::compile_onnx(&onnx, &device)).map_err(|e| anyhow!("{name}: {e}"))?;
        let outputs = model.run_blocking(&input.data).map_err(|e| anyhow!("{name}: {e}"))?;
        let output = outputs.first().ok_or_else(|| anyhow!("{name}: no output"))?;
        let compared = compare_values(output, &reference).map_err(|e| anyhow!("{name}: {e}"))?;
        let precision = model.stats().precision;
        // A device whose compiler refused the f16 plan would have checked f32 instead.
        ensure!(precision == device.precision, "{name}: the plan is {precision:?}");
        println!(
            "{name} ({conv:?}, {precision:?}): largest difference {:.2e} of {:.2}, kernels {:?}",
            compared.largest_difference,
            compared.scale,
            model.stats().kernels
        );
        ensure!(
            compared.within(Tolerance::of_gpu_plan(precision)),
            "{name} ({conv:?}, {precision:?}): {compared:?}"
        );
    }
    Ok(())
}

/// Every case on `device`; the failures together.
fn every_case_matches(device: &GpuDevice) -> anyhow::Result<()> {
    let failed: Vec<String> = (operator_cases().iter())
        .filter_map(|case| check(case, device).err())
        .map(|e| format!("{e:#}"))
        .collect();
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

#[test]
fn every_operator_case_matches_tract() -> anyhow::Result<()> {
    let device = GpuDevice::open_blocking()
        .map_err(|e| anyhow!("{e}: this test needs a Vulkan adapter (cargo xtask test uses Chromium's SwiftShader)"))?
        .with_precision(Precision::F32)
        .map_err(|e| anyhow!(e))?;
    every_case_matches(&device)
}

/// The same cases with tensors stored in f16 (`f16_driver` says where they run).
#[test]
fn every_operator_case_matches_tract_in_f16() -> anyhow::Result<()> {
    f16_driver::run_f16_cases("f16_operator_cases_on_the_named_driver", f16_cases_on_this_adapter)
}

#[test]
#[ignore = "every_operator_case_matches_tract_in_f16 runs it in a process of its own"]
fn f16_operator_cases_on_the_named_driver() -> anyhow::Result<()> {
    f16_cases_on_this_adapter()
}

fn f16_cases_on_this_adapter() -> anyhow::Result<()> {
    every_case_matches(&f16_driver::f16_device()?)
}
