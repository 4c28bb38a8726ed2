//! The GPU executor against onnxruntime's outputs of every reference graph, with the tolerances
//! tract is held to (`models::conformance`), on whatever adapter the machine offers — in CI the
//! SwiftShader Vulkan driver Debian's Chromium ships (`cargo xtask test` points
//! `VK_ICD_FILENAMES` at it). Every reference graph runs on it, YOLO11's attention included; a
//! graph with an operator the executor lacks (made here from a reference graph) must be refused
//! with the operator's name, and then run on tract.
#![cfg(all(feature = "gpu", not(target_arch = "wasm32")))]

use anyhow::{Context, anyhow};
use futures_executor::block_on;

use models::conformance::{REFERENCE_MODELS, TRAINED_REFERENCE_MODEL, compare, reference_models_dir};
use models::gpu::{ConvKernel, GpuDevice, GpuError};
use models::{Detector, GpuLoadError, Runtime, npy};
use prost::Message;

fn read(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = reference_models_dir().join(name);
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

fn device() -> anyhow::Result<GpuDevice> {
    GpuDevice::open_blocking()
        .map_err(|e| anyhow!("{e}: this test needs a Vulkan adapter (cargo xtask test uses Chromium's SwiftShader)"))
}

/// Runs `name` on `detector` and checks it against onnxruntime's output.
fn conforms(name: &str, detector: &Detector) -> anyhow::Result<()> {
    let input = npy::read_f32(&read(&format!("{name}.input.npy"))?).map_err(|e| anyhow!(e))?;
    let expected = npy::read_f32(&read(&format!("{name}.output.npy"))?).map_err(|e| anyhow!(e))?;
    let (output, _) = detector.run_raw(input.data)?;
    let report = compare(detector.info(), &output, &expected).map_err(|e| anyhow!(e))?;
    println!("{name} on {}: {report:?}", detector.engine());
    assert!(report.within_tolerance(), "{name}: {report:?}");
    if name == TRAINED_REFERENCE_MODEL {
        assert_eq!(report.reference_detections, 5, "{report:?}");
    }
    Ok(())
}

#[test]
fn gpu_reproduces_onnxruntime_outputs() -> anyhow::Result<()> {
    let device = device()?;
    println!("adapter: {} ({:?} convolutions)", device.name, device.conv);
    for name in REFERENCE_MODELS {
        let detector = block_on(Detector::load_on_gpu(&read(&format!("{name}.onnx"))?, &device))?;
        assert_eq!(detector.engine(), "gpu");
        let stats = detector.gpu_model().context("no GPU plan")?.stats();
        println!("{name}: {stats:?}");
        assert_eq!(stats.submissions, 1);
        conforms(name, &detector)?;
    }
    Ok(())
}

/// Both convolution kernels give the same answer: the plan picks one by adapter type, so the
/// software adapter in CI would otherwise only ever test one.
#[test]
fn both_convolution_kernels_conform() -> anyhow::Result<()> {
    for conv in [ConvKernel::Tiled, ConvKernel::Direct] {
        let device = device()?.with_conv(conv);
        let onnx = read(&format!("{TRAINED_REFERENCE_MODEL}.onnx"))?;
        let detector = block_on(Detector::load_on_gpu(&onnx, &device))?;
        println!("{conv:?}: {:?}", detector.gpu_model().map(|m| m.stats()));
        conforms(TRAINED_REFERENCE_MODEL, &detector)?;
    }
    Ok(())
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
