//! Where the worker runs a model: Distillery's GPU executor on the browser's WebGPU, or tract on
//! the worker's CPU — as the person chose in the editor, within what the browser offers.

use api::worker::{Engine, EngineChoice, EngineKind, GpuConvolution};
use models::Detector;
use models::gpu::{ConvKernel, GpuDevice, Precision};

/// The CPU executor's vector instructions in this build, as the pre-label panel names them.
#[cfg(target_feature = "relaxed-simd")]
const CPU_SIMD: &str = "wasm relaxed SIMD";
#[cfg(not(target_feature = "relaxed-simd"))]
const CPU_SIMD: &str = "wasm SIMD128";

/// The browser's WebGPU device, opened on first need and kept for every model after, or why
/// there is none; and how many threads tract has on the CPU.
pub struct Engines {
    gpu: Option<Result<GpuDevice, String>>,
    cpu_threads: usize,
}

impl Engines {
    pub fn new(cpu_threads: usize) -> Self {
        Self { gpu: None, cpu_threads }
    }

    /// Loads `onnx` where `choice` says (a GPU plan with `convolution`'s kernel where given,
    /// else the adapter's). When the choice allows the GPU but the CPU runs the model anyway,
    /// the answer's `not_on_gpu` says why; only a model no engine can run fails.
    pub async fn load(
        &mut self,
        onnx: &[u8],
        choice: EngineChoice,
        convolution: Option<GpuConvolution>,
    ) -> Result<(Detector, Engine), String> {
        let threads = self.cpu_threads;
        let not_on_gpu = match choice {
            EngineChoice::Cpu => None,
            EngineChoice::Auto | EngineChoice::Gpu => match self.gpu().await {
                Err(why) => Some(why.clone()),
                Ok(device) if device.software && choice == EngineChoice::Auto => Some(
                    "the browser's only WebGPU adapter is a software one, slower than the CPU (choose GPU to use it anyway)"
                        .to_owned(),
                ),
                Ok(device) => {
                    let device = &with_convolution(device.clone(), convolution);
                    let detector = Detector::load_on_gpu_or_tract(onnx, device)
                        .await
                        .map_err(|e| e.0)?;
                    let engine = match detector.gpu_fallback() {
                        None => Engine {
                            kind: EngineKind::Webgpu,
                            name: gpu_name(device, &detector),
                            not_on_gpu: None,
                        },
                        Some(why) => cpu(threads, Some(why.to_owned())),
                    };
                    return Ok((detector, engine));
                }
            },
        };
        let detector = Detector::load(onnx).map_err(|e| e.0)?;
        Ok((detector, cpu(threads, not_on_gpu)))
    }

    /// The browser's WebGPU device, software or not, with `convolution`'s kernel where given;
    /// why there is none otherwise.
    pub async fn gpu_device(&mut self, convolution: Option<GpuConvolution>) -> Result<GpuDevice, String> {
        let device = self.gpu().await.clone()?;
        Ok(with_convolution(device, convolution))
    }

    async fn gpu(&mut self) -> &Result<GpuDevice, String> {
        if self.gpu.is_none() {
            let opened = GpuDevice::open()
                .await
                .map_err(|e| format!("this browser offers no WebGPU device ({e})"));
            self.gpu = Some(opened);
        }
        self.gpu.get_or_insert_with(|| Err("no WebGPU device".into()))
    }
}

/// `device` with plans using `convolution`'s kernel where given, else the adapter's.
fn with_convolution(device: GpuDevice, convolution: Option<GpuConvolution>) -> GpuDevice {
    match convolution {
        Some(GpuConvolution::Tiled) => device.with_conv(ConvKernel::Tiled),
        Some(GpuConvolution::Direct) => device.with_conv(ConvKernel::Direct),
        None => device,
    }
}

/// `WebGPU`, with what a person may want to know: `WebGPU (software adapter, f16)`.
fn gpu_name(device: &GpuDevice, detector: &Detector) -> String {
    let f16 = detector
        .gpu_model()
        .is_some_and(|model| model.stats().precision == Precision::F16);
    let notes: Vec<&str> = [(device.software, "software adapter"), (f16, "f16")]
        .into_iter()
        .filter_map(|(applies, note)| applies.then_some(note))
        .collect();
    if notes.is_empty() {
        device.name.clone()
    } else {
        format!("{} ({})", device.name, notes.join(", "))
    }
}

fn cpu(threads: usize, not_on_gpu: Option<String>) -> Engine {
    let threads = match threads {
        1 => "1 thread".to_owned(),
        n => format!("{n} threads"),
    };
    Engine {
        kind: EngineKind::Cpu,
        name: format!("CPU ({CPU_SIMD}, {threads})"),
        not_on_gpu,
    }
}
