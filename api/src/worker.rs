//! Messages between the web app and its inference worker (`frontend/worker`), as JSON strings.
//! Both sides use these types, so they cannot disagree.

use serde::{Deserialize, Serialize};

/// What the app asks the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Pre-label one image with the model at `model_url` (loaded once, cached across reloads).
    Detect {
        /// Request id, echoed in the answer.
        id: u32,
        /// Content-addressed URL of the ONNX bytes.
        model_url: String,
        /// The image, for the report.
        image_id: i64,
        /// Where the worker fetches the image bytes.
        image_url: String,
        /// Lowest score returned; the editor's threshold slider filters further.
        confidence: f32,
        /// Where to run it (the person's choice in the editor).
        #[serde(default)]
        engine: EngineChoice,
    },
    /// Load the model at `model_url` and run it once on a blank image, so that the first image
    /// shown afterwards waits for neither the load nor the first run's allocations.
    Prepare {
        /// Request id, echoed in the answer.
        id: u32,
        /// Content-addressed URL of the ONNX bytes.
        model_url: String,
        /// Where to run it, as `Detect` will ask.
        #[serde(default)]
        engine: EngineChoice,
    },
    /// Run a model on a reference input and compare with the reference output (.npy files).
    Conformance {
        /// Request id, echoed in the answer.
        id: u32,
        /// URL of the ONNX bytes.
        model_url: String,
        /// URL of the reference input (.npy).
        input_url: String,
        /// URL of onnxruntime's output for it (.npy).
        output_url: String,
        /// Which executor to check.
        #[serde(default)]
        engine: EngineChoice,
        /// The GPU plan's convolution kernel where not the adapter's own choice, so the tiled
        /// kernels hardware adapters get are checked in the browser's shader compiler on a
        /// software adapter too.
        #[serde(default)]
        gpu_convolution: Option<GpuConvolution>,
    },
    /// Run a graph that is not a detector (one of the GPU executor's operator cases) on the
    /// browser's WebGPU and compare its output with tract's, value by value (.npy files).
    OperatorCase {
        /// Request id, echoed in the answer.
        id: u32,
        /// URL of the ONNX bytes.
        model_url: String,
        /// URL of the input (.npy).
        input_url: String,
        /// URL of tract's output for it (.npy).
        output_url: String,
        /// The plan's convolution kernel where not the adapter's own choice.
        #[serde(default)]
        gpu_convolution: Option<GpuConvolution>,
    },
    /// Time repeated runs of a model on a reference input.
    Bench {
        /// Request id, echoed in the answer.
        id: u32,
        /// URL of the ONNX bytes.
        model_url: String,
        /// URL of the input tensor (.npy).
        input_url: String,
        /// Untimed runs first (at least one: the first run is reported on its own).
        warmup: u32,
        /// Timed runs.
        runs: u32,
        /// Which executor to time.
        #[serde(default)]
        engine: EngineChoice,
    },
}

impl ToWorker {
    /// The request id.
    pub fn id(&self) -> u32 {
        match self {
            Self::Detect { id, .. }
            | Self::Prepare { id, .. }
            | Self::Conformance { id, .. }
            | Self::OperatorCase { id, .. }
            | Self::Bench { id, .. } => *id,
        }
    }

    /// Gives the request a new id (the app numbers what it sends).
    pub fn set_id(&mut self, new_id: u32) {
        match self {
            Self::Detect { id, .. }
            | Self::Prepare { id, .. }
            | Self::Conformance { id, .. }
            | Self::OperatorCase { id, .. }
            | Self::Bench { id, .. } => *id = new_id,
        }
    }
}

/// Which convolution kernel a GPU plan uses (`models::gpu::ConvKernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuConvolution {
    /// Tiled in workgroup memory: what hardware adapters get.
    Tiled,
    /// Straight from storage: what software adapters get.
    Direct,
}

/// Where the worker should run a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineChoice {
    /// WebGPU when the browser offers a hardware adapter, else the CPU (a software adapter is
    /// slower than the CPU path).
    #[default]
    Auto,
    /// WebGPU on whatever adapter the browser offers, a software one too; the CPU only when
    /// there is none or the model needs an operator the GPU executor lacks.
    Gpu,
    /// The CPU (tract in wasm).
    Cpu,
}

impl EngineChoice {
    /// Every choice, in the order the editor lists them.
    pub const ALL: [EngineChoice; 3] = [EngineChoice::Auto, EngineChoice::Gpu, EngineChoice::Cpu];

    /// The wire name (`auto`, `gpu`, `cpu`).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Gpu => "gpu",
            EngineChoice::Cpu => "cpu",
        }
    }

    /// The choice named `name`, if any.
    pub fn parse(name: &str) -> Option<EngineChoice> {
        Self::ALL.into_iter().find(|choice| choice.as_str() == name)
    }
}

/// Which kind of executor ran a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Distillery's GPU executor on the browser's WebGPU.
    Webgpu,
    /// tract in wasm on the worker's CPU.
    Cpu,
}

/// The executor that ran a request, and why it is that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    /// GPU or CPU.
    pub kind: EngineKind,
    /// For people: `WebGPU (software adapter)`, `CPU (wasm SIMD128, 1 thread)`.
    pub name: String,
    /// Why the CPU runs the model although the choice allowed the GPU (no adapter, only a
    /// software one, an operator the GPU executor lacks).
    pub not_on_gpu: Option<String>,
}

/// Where the worker found the model bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// Already loaded in this worker.
    Memory,
    /// From the browser's Cache Storage: no download.
    Cache,
    /// Downloaded (and cached for next time).
    Network,
}

/// One proposal, by the model's class index, in upright image pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The model's class index.
    pub class_index: u32,
    /// Confidence, 0..1.
    pub score: f32,
    /// `[x0, y0, x1, y1]` in upright image pixels.
    pub bbox: [f32; 4],
}

/// What the worker answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker has started and listens; requests sent before this would be lost.
    Ready,
    /// An image's proposals.
    Detected {
        /// The request's id.
        id: u32,
        /// The image.
        image_id: i64,
        /// Proposals down to the requested confidence.
        proposals: Vec<Proposal>,
        /// Scores at the proposal threshold (0.25), for the ranking.
        report: crate::ImagePrediction,
        /// Where the model bytes came from.
        model_source: ModelSource,
        /// Decode + letterbox + model + NMS, milliseconds.
        inference_ms: f64,
        /// What ran the model.
        engine: Engine,
    },
    /// The model is loaded and has run once.
    Prepared {
        /// The request's id.
        id: u32,
        /// Where the model bytes came from (`Memory`: it was ready already).
        model_source: ModelSource,
        /// What runs the model.
        engine: Engine,
    },
    /// How a run compares with the onnxruntime reference.
    Conformance {
        /// The request's id.
        id: u32,
        /// Largest absolute difference on box rows.
        max_box_diff: f32,
        /// Largest absolute difference on class-score rows.
        max_score_diff: f32,
        /// Detections the reference output decodes to (0.25 threshold, NMS at 0.7).
        reference_detections: u32,
        /// Detections the run decodes to, the same way.
        detections: u32,
        /// Reference detections paired with a run detection of the same class.
        matched_detections: u32,
        /// Lowest IoU over those pairs (1 when there are none).
        min_detection_iou: f32,
        /// Every figure within its tolerance (`models::conformance`).
        within_tolerance: bool,
        /// The matrix kernels the run went through (`Detector::matmul_kernels`; none on the GPU).
        matmul_kernels: Vec<String>,
        /// How many convolutions packed their panels by rows (`Detector::im2col_rows`).
        #[serde(default)]
        im2col_rows: u32,
        /// The kernel its SiLU activations ran on (`Detector::silu_kernel`; none on the GPU).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        silu_kernel: Option<String>,
        /// The GPU plan's kernels, by name (none on the CPU).
        #[serde(default)]
        gpu_kernels: Vec<String>,
        /// What ran the model.
        engine: Engine,
    },
    /// How an operator case's output on WebGPU compares with tract's.
    OperatorCase {
        /// The request's id.
        id: u32,
        /// Largest absolute difference from tract's output.
        largest_difference: f32,
        /// tract's largest output magnitude, at least 1: the tolerance is a fraction of it.
        scale: f32,
        /// Within the tolerance of the plan's precision (`models::conformance::compare_values`).
        within_tolerance: bool,
        /// How the plan stored its tensors: `f32` or `f16`.
        precision: String,
        /// The plan's kernels, by name.
        gpu_kernels: Vec<String>,
        /// The adapter it ran on.
        engine: Engine,
    },
    /// Timings of a model.
    Bench {
        /// The request's id.
        id: u32,
        /// Parsing and optimising the model (on the GPU also uploading its weights and building
        /// every pipeline), milliseconds.
        load_ms: f64,
        /// The first run after loading, milliseconds: with `load_ms`, what the first image waits.
        first_run_ms: f64,
        /// Each timed run, milliseconds.
        times_ms: Vec<f64>,
        /// One more run, timed per operator kind (per kernel on the GPU), slowest first.
        operators: Vec<OperatorTime>,
        /// What ran the model.
        engine: Engine,
        /// GPU dispatches and queue submissions per inference (none on the CPU).
        gpu_work: Option<GpuWork>,
    },
    /// The request could not be served.
    Failed {
        /// The request's id (0 when the request was unreadable).
        id: u32,
        /// Why, in words for the page.
        message: String,
    },
}

impl FromWorker {
    /// The id of the request this answers (0 for `Ready`).
    pub fn id(&self) -> u32 {
        match self {
            Self::Ready => 0,
            Self::Detected { id, .. }
            | Self::Prepared { id, .. }
            | Self::Conformance { id, .. }
            | Self::OperatorCase { id, .. }
            | Self::Bench { id, .. }
            | Self::Failed { id, .. } => *id,
        }
    }
}

/// What one inference asks of the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuWork {
    /// Compute dispatches.
    pub dispatches: u32,
    /// Queue submissions.
    pub submissions: u32,
}

/// Time spent in one kind of operator during a profiled run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorTime {
    /// tract's operator name, e.g. `OptMatMul`.
    pub operator: String,
    /// Milliseconds in all.
    pub ms: f64,
    /// How many operators of this kind ran.
    pub count: u32,
}
