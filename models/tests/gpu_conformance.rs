//! The GPU executor against onnxruntime's outputs of every reference graph, with the tolerances
//! tract is held to (`models::conformance`), on whatever adapter the machine offers — in CI the
//! SwiftShader Vulkan driver Debian's Chromium ships (`cargo xtask test` points
//! `VK_ICD_FILENAMES` at it). Every reference graph runs on it, YOLO11's attention included; a
//! graph with an operator the executor lacks (made here from a reference graph) must be refused
//! with the operator's name, and then run on tract. Plans storing tensors in f16 are held to
//! f16's tolerance on an adapter with `shader-f16` (in CI Mesa's lavapipe: SwiftShader has none).
#![cfg(all(feature = "gpu", not(target_arch = "wasm32")))]

mod f16_driver;

use anyhow::{Context, anyhow};
use futures_executor::block_on;

use models::conformance::{REFERENCE_MODELS, TRAINED_REFERENCE_MODEL, Tolerance, compare, reference_models_dir};
use models::gpu::{ConvKernel, GpuDevice, GpuError, Precision};
use models::{Detector, GpuLoadError, Runtime, npy};
use prost::Message;

fn read(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = reference_models_dir().join(name);
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The machine's adapter, with plans in f32.
fn device() -> anyhow::Result<GpuDevice> {
    GpuDevice::open_blocking()
        .map_err(|e| anyhow!("{e}: this test needs a Vulkan adapter (cargo xtask test uses Chromium's SwiftShader)"))?
        .with_precision(Precision::F32)
        .map_err(|e| anyhow!(e))
}

/// Runs `name` on `detector`, which must be the GPU executor storing tensors as `precision`,
/// and checks it against onnxruntime's output within `tolerance`.
fn conforms(name: &str, detector: &Detector, precision: Precision, tolerance: Tolerance) -> anyhow::Result<()> {
    let stats = detector.gpu_model().context("no GPU plan")?.stats();
    println!("{name}: {stats:?}");
    assert_eq!(stats.submissions, 1);
    assert_eq!(stats.precision, precision);
    let runs = |kernel: &str| {
        (stats.kernels.iter())
            .find(|(name, _)| name == kernel)
            .map_or(0, |(_, n)| *n)
    };
    if name.contains("yolov8n") {
        // Every concat member is written in place, the class scores' sigmoid runs in their
        // convolutions and the DFL transpose in its softmax: YOLOv8's only copies are the two
        // nearest upsamplings in its neck, and no activation has a pass of its own.
        assert_eq!((runs("copy"), runs("unary")), (2, 0), "{name}: {stats:?}");
    }
    if name.contains("yolo11n") {
        // The attention's q and k slices and q's transpose are read in place by the product
        // and the scaling that use them. Copied: the two upsamplings, v (a positional
        // convolution reads it too), the attention weights' transpose (read in place it would
        // scatter the product's neighbouring threads) and one C2PSA concat member.
        assert_eq!(runs("copy"), 5, "{name}: {stats:?}");
    }
    let input = npy::read_f32(&read(&format!("{name}.input.npy"))?).map_err(|e| anyhow!(e))?;
    let expected = npy::read_f32(&read(&format!("{name}.output.npy"))?).map_err(|e| anyhow!(e))?;
    let (output, _) = detector.run_raw(input.data)?;
    let report = compare(detector.info(), &output, &expected).map_err(|e| anyhow!(e))?;
    println!("{name} on the GPU, {precision:?}: {report:?}");
    assert!(report.within(tolerance), "{name}: {report:?}");
    if name == TRAINED_REFERENCE_MODEL {
        assert_eq!(report.reference_detections, 5, "{report:?}");
    }
    Ok(())
}

/// Every reference graph, and the trained one with both convolution kernels (the plan picks
/// one by adapter type, so a software adapter would otherwise only ever test one).
fn every_case_conforms(device: &GpuDevice, tolerance: Tolerance) -> anyhow::Result<()> {
    println!("adapter: {} ({:?} convolutions)", device.name, device.conv);
    for name in REFERENCE_MODELS {
        let detector = block_on(Detector::load_on_gpu(&read(&format!("{name}.onnx"))?, device))?;
        conforms(name, &detector, device.precision, tolerance)?;
    }
    for conv in [ConvKernel::Tiled, ConvKernel::Direct] {
        let device = device.clone().with_conv(conv);
        let onnx = read(&format!("{TRAINED_REFERENCE_MODEL}.onnx"))?;
        let detector = block_on(Detector::load_on_gpu(&onnx, &device))?;
        println!("{conv:?} convolutions:");
        conforms(TRAINED_REFERENCE_MODEL, &detector, device.precision, tolerance)?;
    }
    Ok(())
}

#[test]
fn gpu_reproduces_onnxruntime_outputs() -> anyhow::Result<()> {
    every_case_conforms(&device()?, Tolerance::F32)
}

/// f16 plans on an adapter with `shader-f16` are held to f16's tolerance (`f16_driver` says
/// where they run).
#[test]
fn f16_plans_reproduce_onnxruntime_outputs() -> anyhow::Result<()> {
    f16_driver::run_f16_cases("f16_cases_on_the_named_driver", f16_cases_on_this_adapter)
}

#[test]
#[ignore = "f16_plans_reproduce_onnxruntime_outputs runs it in a process of its own"]
fn f16_cases_on_the_named_driver() -> anyhow::Result<()> {
    f16_cases_on_this_adapter()
}

fn f16_cases_on_this_adapter() -> anyhow::Result<()> {
    every_case_conforms(&f16_driver::f16_device()?, Tolerance::F16)
}

/// The trained reference graph with its first Sigmoid made a Tanh, an operator the executor
/// lacks (the graph stays valid: `x·tanh(x)` where it had `x·sigmoid(x)`).
fn graph_with_tanh() -> anyhow::Result<Vec<u8>> {
    let mut model = tract_onnx::pb::ModelProto::decode(read(&format!("{TRAINED_REFERENCE_MODEL}.onnx"))?.as_slice())?;
    let graph = model.graph.as_mut().context("no graph")?;
    let sigmoid = (graph.node.iter_mut())
        .find(|node| node.op_type == "Sigmoid")
        .context("no Sigmoid")?;
    sigmoid.op_type = "Tanh".into();
    Ok(model.encode_to_vec())
}

/// Asked for the GPU, a graph the executor cannot run still runs — on tract, exactly as tract
/// alone runs it — and the detector says which operator sent it there; the GPU-only loader
/// refuses it with the same name.
#[test]
fn a_refused_graph_runs_on_tract_and_says_why() -> anyhow::Result<()> {
    let onnx = graph_with_tanh()?;
    let device = device()?;
    match block_on(Detector::load_on_gpu(&onnx, &device)) {
        Err(GpuLoadError::Gpu(GpuError::Unsupported(what))) => assert!(what.contains("Tanh"), "refused for {what}"),
        other => panic!("expected a refusal naming Tanh, got {other:?}"),
    }
    let detector = Detector::load_with(&onnx, Runtime::Gpu(device))?;
    assert_eq!(detector.engine(), "tract");
    let why = detector.gpu_fallback().context("no reason given")?;
    assert!(why.contains("Tanh"), "{why}");
    let input = npy::read_f32(&read(&format!("{TRAINED_REFERENCE_MODEL}.input.npy"))?).map_err(|e| anyhow!(e))?;
    let (fallback, _) = detector.run_raw(input.data.clone())?;
    let (tract, _) = Detector::load(&onnx)?.run_raw(input.data)?;
    assert_eq!(fallback, tract);
    Ok(())
}
