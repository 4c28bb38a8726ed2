//! The GPU executor: tract parses and checks the graph, this module runs it through wgpu —
//! WebGPU in browsers, Vulkan on servers. `graph` lowers tract's typed model to a few kernels,
//! `kernels` holds their WGSL and parameters, `plan` makes them concrete on one device.
//!
//! A graph with an operator the executor lacks is refused with the operator's name
//! ([`GpuError::Unsupported`]); the caller runs it on tract instead, never a partial answer.

mod graph;
mod kernels;
mod plan;

#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc as Shared;

// wgpu's browser objects are neither Send nor Sync; a browser worker has one thread anyway.
#[cfg(target_arch = "wasm32")]
use std::rc::Rc as Shared;

use tract_onnx::prelude::TypedModel;

pub use graph::Unsupported;
pub use kernels::{ConvKernel, Precision};

/// Why the GPU executor cannot run a model, or failed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuError {
    /// No adapter, or it refused a device.
    NoDevice(String),
    /// The graph uses something the executor lacks.
    Unsupported(String),
    /// The device failed while building or running the plan.
    Run(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::NoDevice(why) => write!(f, "no GPU: {why}"),
            GpuError::Unsupported(what) => write!(f, "the GPU executor lacks {what}"),
            GpuError::Run(why) => write!(f, "the GPU failed: {why}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// What a compiled plan does per inference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GpuStats {
    /// Compute dispatches per inference.
    pub dispatches: usize,
    /// Queue submissions per inference.
    pub submissions: usize,
    /// Bytes of storage the plan holds (weights, activations, input and outputs).
    pub arena_bytes: u64,
    /// How the plan stores its tensors.
    pub precision: Precision,
    /// Dispatches per kernel, by kernel name.
    pub kernels: Vec<(String, usize)>,
}

/// An adapter and the device opened on it, shared by every model loaded on it.
#[derive(Clone)]
pub struct GpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// The adapter's name and backend, e.g. `SwiftShader Device (Vulkan)` or `WebGPU`.
    pub name: String,
    /// A software adapter (a browser's fallback adapter, lavapipe, SwiftShader): it works,
    /// but the CPU executor is faster.
    pub software: bool,
    /// The convolution kernel plans on this device use: tiled on hardware, direct on a
    /// software adapter (CPU device type).
    pub conv: ConvKernel,
    /// How plans on this device store tensors: f16 wherever the adapter has `shader-f16`.
    pub precision: Precision,
    /// Whether the device was opened with `shader-f16`.
    has_f16: bool,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl GpuDevice {
    /// Opens the best adapter this machine (or browser) offers, with its own limits so large
    /// activations fit.
    pub async fn open() -> Result<Self, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoDevice(e.to_string()))?;
        let info = adapter.get_info();
        let has_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("distillery"),
                required_features: if has_f16 {
                    wgpu::Features::SHADER_F16
                } else {
                    wgpu::Features::empty()
                },
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoDevice(e.to_string()))?;
        // Browsers name no adapter (only its fallback flag is exposed to wgpu).
        let software = info.device_type == wgpu::DeviceType::Cpu;
        let name = match (info.name.is_empty(), info.backend) {
            (true, wgpu::Backend::BrowserWebGpu) => "WebGPU".to_owned(),
            (true, backend) => format!("{backend:?}"),
            (false, wgpu::Backend::BrowserWebGpu) => format!("WebGPU ({})", info.name),
            (false, backend) => format!("{} ({backend:?})", info.name),
        };
        Ok(Self {
            device,
            queue,
            name,
            software,
            conv: if software {
                ConvKernel::Direct
            } else {
                ConvKernel::Tiled
            },
            precision: if has_f16 { Precision::F16 } else { Precision::F32 },
            has_f16,
        })
    }

    /// Whether plans on this device may store tensors in f16 (the adapter has `shader-f16`).
    pub fn has_f16(&self) -> bool {
        self.has_f16
    }

    /// This device with plans storing tensors as `precision` (the conformance tests run both);
    /// f16 needs `shader-f16`.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self, GpuError> {
        if precision == Precision::F16 && !self.has_f16 {
            return Err(GpuError::NoDevice(format!("{} has no shader-f16", self.name)));
        }
        self.precision = precision;
        Ok(self)
    }

    /// This device with plans using `conv` (the conformance tests run both kernels).
    pub fn with_conv(mut self, conv: ConvKernel) -> Self {
        self.conv = conv;
        self
    }

    /// As `open`, blocking until the adapter answers (servers).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_blocking() -> Result<Self, GpuError> {
        futures_executor::block_on(Self::open())
    }
}

/// A detector graph compiled for one GPU device.
#[derive(Clone)]
pub struct GpuModel {
    plan: Shared<plan::Plan>,
    /// One run at a time from blocking callers (a teacher job runs images on several threads;
    /// runs share the plan's buffers).
    #[cfg(not(target_arch = "wasm32"))]
    turn: Shared<std::sync::Mutex<()>>,
}

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel").field("stats", self.stats()).finish()
    }
}

impl GpuModel {
    /// Lowers and compiles `model` (tract's typed model, input shape fixed, before tract's own
    /// optimisation) for `device`. Every pipeline is built and every weight uploaded here; a
    /// validation error of the device comes back as [`GpuError::Run`]. A device that refuses
    /// the f16 plan (a shader compiler that rejects what naga accepts) gets the f32 one, which
    /// `stats().precision` then says.
    pub async fn compile(model: &TypedModel, device: &GpuDevice) -> Result<Self, GpuError> {
        let graph = graph::Graph::lower(model).map_err(|e| GpuError::Unsupported(e.to_string()))?;
        match Self::build(&graph, device, device.precision).await {
            Err(GpuError::Run(_)) if device.precision == Precision::F16 => {
                Self::build(&graph, device, Precision::F32).await
            }
            built => built,
        }
    }

    /// Compiles an ONNX graph that is not a detector (an operator case, `op_cases`) at the
    /// input shape it declares; detectors go through `Detector`, which fixes theirs. The error
    /// says whether tract could not read the graph or the executor refused it.
    pub async fn compile_onnx(onnx: &[u8], device: &GpuDevice) -> Result<Self, String> {
        use tract_onnx::prelude::{Framework, InferenceModelExt};
        let typed = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .and_then(|model| model.into_typed())
            .map_err(|e| format!("tract cannot read the graph: {e:#}"))?;
        Self::compile(&typed, device).await.map_err(|e| e.to_string())
    }

    async fn build(graph: &graph::Graph, device: &GpuDevice, precision: Precision) -> Result<Self, GpuError> {
        let scope = device.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let plan = plan::Plan::build(graph, &device.device, &device.queue, device.conv, precision);
        if let Some(error) = scope.pop().await {
            return Err(GpuError::Run(error.to_string()));
        }
        Ok(Self {
            plan: Shared::new(plan?),
            #[cfg(not(target_arch = "wasm32"))]
            turn: Shared::default(),
        })
    }

    /// Runs the model on one input and returns every output, in the graph's order. Calls on
    /// one model must not overlap.
    pub async fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, GpuError> {
        self.plan.run(input).await
    }

    /// As `run`, blocking, and safe to call from several threads (they take turns).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_blocking(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, GpuError> {
        let _turn = self
            .turn
            .lock()
            .map_err(|_| GpuError::Run("an earlier run panicked".into()))?;
        futures_executor::block_on(self.plan.run(input))
    }

    /// Milliseconds per kernel over one inference run dispatch by dispatch (slowest first),
    /// with the number of dispatches of each; `now_ms` is the caller's clock.
    pub async fn profile(
        &self,
        input: &[f32],
        now_ms: impl Fn() -> f64,
    ) -> Result<Vec<(String, f64, usize)>, GpuError> {
        self.plan.profile(input, now_ms).await
    }

    /// Dispatches, submissions and storage of one inference.
    pub fn stats(&self) -> &GpuStats {
        self.plan.stats()
    }
}
