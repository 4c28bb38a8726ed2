//! The GPU executor against onnxruntime's outputs of every reference graph, with the tolerances
//! tract is held to (`models::conformance`), on whatever adapter the machine offers — in CI the
//! SwiftShader Vulkan driver Debian's Chromium ships (`cargo xtask test` points
//! `VK_ICD_FILENAMES` at it). A graph with an operator the executor lacks must be refused with
//! the operator's name, and then run on tract.
#![cfg(all(feature = "gpu", not(target_arch = "wasm32")))]

use anyhow::{Context, anyhow};
use futures_executor::block_on;

use models::conformance::{REFERENCE_MODELS, TRAINED_REFERENCE_MODEL, compare, reference_models_dir};
use models::gpu::{ConvKernel, GpuDevice, GpuError};
use models::{Detector, GpuLoadError, Runtime, npy};

fn read(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = reference_models_dir().join(name);
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The graph that still has an operator the executor lacks: YOLO11's attention block multiplies
/// two activations (EinSum).
const REFUSED: (&str, &str) = ("yolo11n-640-random", "EinSum");

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
        let loaded = block_on(Detector::load_on_gpu(&read(&format!("{name}.onnx"))?, &device));
        if name == REFUSED.0 {
            match loaded {
                Err(GpuLoadError::Gpu(GpuError::Unsupported(what))) => {
                    assert!(what.contains(REFUSED.1), "{name} refused for {what}");
                    continue;
                }
                other => panic!("{name}: expected a refusal naming {}, got {other:?}", REFUSED.1),
            }
        }
        let detector = loaded?;
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

/// Asked for the GPU, a graph the executor cannot run still runs — on tract — and the detector
/// says which operator sent it there.
#[test]
fn a_refused_graph_runs_on_tract_and_says_why() -> anyhow::Result<()> {
    let (name, operator) = REFUSED;
    let detector = Detector::load_with(&read(&format!("{name}.onnx"))?, Runtime::Gpu(device()?))?;
    assert_eq!(detector.engine(), "tract");
    let why = detector.gpu_fallback().context("no reason given")?;
    assert!(why.contains(operator), "{why}");
    conforms(name, &detector)
}
