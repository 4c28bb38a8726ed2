//! A loaded ONNX detector: tract parses and optimises the graph once, then [`Detector::detect`]
//! runs letterbox → model → decode → NMS → image pixels for each image.

use std::collections::HashMap;
use std::sync::Arc;

use api::worker::OperatorTime;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::im2col_panels::Geometry;
use crate::layout::OutputLayout;
use crate::letterbox::Letterbox;
use crate::metadata::UltralyticsMetadata;
use crate::nms::{Detection, non_max_suppression};
use crate::preprocess::{Pixels, input_tensor};

/// Ultralytics' defaults for proposals.
pub const DEFAULT_CONFIDENCE: f32 = 0.25;
/// Ultralytics' default IoU threshold for class-wise NMS.
pub const DEFAULT_IOU: f32 = 0.7;
/// At most this many detections per image survive NMS (Ultralytics' `max_det`).
pub const MAX_DETECTIONS: usize = 300;
/// Candidates kept for NMS, best first (Ultralytics' `max_nms`), so a degenerate model cannot
/// make NMS quadratic in the anchor count.
const MAX_NMS_CANDIDATES: usize = 30_000;

/// What a model says about itself, found while loading it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Side of the square input, in pixels.
    pub input_size_px: u32,
    /// How the detection output is laid out.
    pub layout: OutputLayout,
    /// Class names from the metadata, or `class0`, `class1`, … when it has none.
    pub class_names: Vec<String>,
    /// Largest stride from the metadata, when present.
    pub stride: Option<u32>,
    /// Length of the per-image `embedding` output, when the model has one (diversity ranking).
    pub embedding_len: Option<usize>,
}

/// Why a model cannot be used, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

fn err(context: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError(format!("{context}: {e}"))
}

/// One image's detections, plus the raw pieces the ranking needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Kept detections in image pixels, best first.
    pub detections: Vec<Detection>,
    /// Best class score of the strongest anchor, even below the threshold: the score an image with
    /// no confident detection is ranked by.
    pub best_candidate_score: f32,
    /// The `embedding` output, when the model has one.
    pub embedding: Option<Vec<f32>>,
}

/// A parsed, optimised detector, ready to run.
#[derive(Clone)]
pub struct Detector {
    executor: Executor,
    info: ModelInfo,
    embedding_output: Option<usize>,
    /// Why the GPU executor was asked for and tract runs the graph instead.
    gpu_fallback: Option<String>,
}

/// What runs a loaded detector's graph.
#[derive(Clone)]
enum Executor {
    /// tract's optimised plan (everywhere; the browser's only engine).
    Tract(Arc<TypedRunnableModel>),
    /// An onnxruntime session (servers that installed onnxruntime).
    #[cfg(feature = "onnxruntime")]
    Onnxruntime(Arc<crate::onnxruntime::OrtModel>),
    /// The wgpu plan (WebGPU in browsers, Vulkan on servers).
    #[cfg(feature = "gpu")]
    Gpu(crate::gpu::GpuModel),
}

/// Which engine `Detector::load_with` runs the graph on.
#[derive(Debug, Clone, Default)]
pub enum Runtime {
    /// tract (the default, and the reference the other is checked against).
    #[default]
    Tract,
    /// onnxruntime, loaded by `onnxruntime::init`, on this device with this many threads per
    /// operator.
    #[cfg(feature = "onnxruntime")]
    Onnxruntime {
        /// CPU or CUDA.
        device: crate::onnxruntime::OrtDevice,
        /// Threads inside each operator.
        threads: usize,
    },
    /// The GPU executor on this device (Vulkan on servers); a graph it cannot run goes to
    /// tract, and `Detector::gpu_fallback` says why.
    #[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
    Gpu(crate::gpu::GpuDevice),
}

impl Runtime {
    /// `tract`, `onnxruntime (cpu)`, `onnxruntime (cuda)` or `gpu`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tract => "tract",
            #[cfg(feature = "onnxruntime")]
            Self::Onnxruntime { device, .. } => device.name(),
            #[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
            Self::Gpu(_) => "gpu",
        }
    }
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Parses ONNX bytes, checks the input is one `[1, 3, S, S]` image and the output a supported
    /// layout, and optimises the graph for this machine (tract).
    pub fn load(onnx: &[u8]) -> Result<Self, ModelError> {
        Self::load_with(onnx, Runtime::Tract)
    }

    /// As `load`, with the graph run by `runtime`; tract checks and describes it either way.
    pub fn load_with(onnx: &[u8], runtime: Runtime) -> Result<Self, ModelError> {
        let Parsed {
            typed,
            info,
            embedding_output,
        } = Parsed::read(onnx)?;
        let (executor, gpu_fallback) = match runtime {
            Runtime::Tract => (Executor::Tract(tract_plan(typed)?), None),
            #[cfg(feature = "onnxruntime")]
            Runtime::Onnxruntime { device, threads } => {
                drop(typed);
                let session = crate::onnxruntime::OrtModel::load(onnx, device, threads)?;
                (Executor::Onnxruntime(Arc::new(session)), None)
            }
            #[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
            Runtime::Gpu(device) => {
                let compiled = futures_executor::block_on(crate::gpu::GpuModel::compile(&typed, &device));
                gpu_or_tract(typed, compiled)?
            }
        };
        Ok(Self {
            executor,
            info,
            embedding_output,
            gpu_fallback,
        })
    }

    /// Why tract runs this detector although the GPU was asked for (an operator the GPU
    /// executor lacks, or the device failed).
    pub fn gpu_fallback(&self) -> Option<&str> {
        self.gpu_fallback.as_deref()
    }

    /// As `load`, with the graph compiled for `device` by the GPU executor. A graph it cannot
    /// run is refused with the operator it lacks ([`crate::gpu::GpuError::Unsupported`]); the
    /// caller decides whether tract runs it instead.
    #[cfg(feature = "gpu")]
    pub async fn load_on_gpu(onnx: &[u8], device: &crate::gpu::GpuDevice) -> Result<Self, GpuLoadError> {
        let Parsed {
            typed,
            info,
            embedding_output,
        } = Parsed::read(onnx).map_err(GpuLoadError::Model)?;
        let model = crate::gpu::GpuModel::compile(&typed, device)
            .await
            .map_err(GpuLoadError::Gpu)?;
        Ok(Self {
            executor: Executor::Gpu(model),
            info,
            embedding_output,
            gpu_fallback: None,
        })
    }

    /// As `load_on_gpu`, except that a graph the GPU executor cannot run (or a device that
    /// fails to build it) runs on tract, and [`Detector::gpu_fallback`] says why — what the
    /// browser worker does, where nothing can block.
    #[cfg(feature = "gpu")]
    pub async fn load_on_gpu_or_tract(onnx: &[u8], device: &crate::gpu::GpuDevice) -> Result<Self, ModelError> {
        let Parsed {
            typed,
            info,
            embedding_output,
        } = Parsed::read(onnx)?;
        let compiled = crate::gpu::GpuModel::compile(&typed, device).await;
        let (executor, gpu_fallback) = gpu_or_tract(typed, compiled)?;
        Ok(Self {
            executor,
            info,
            embedding_output,
            gpu_fallback,
        })
    }

    /// Which engine runs this detector: `tract`, `onnxruntime` or `gpu` (after any fallback).
    pub fn engine(&self) -> &'static str {
        match &self.executor {
            Executor::Tract(_) => "tract",
            #[cfg(feature = "onnxruntime")]
            Executor::Onnxruntime(_) => "onnxruntime",
            #[cfg(feature = "gpu")]
            Executor::Gpu(_) => "gpu",
        }
    }

    /// How close to onnxruntime this detector's engine is held (`conformance`): f32's bounds,
    /// or f16's when the GPU executor stores tensors in f16.
    pub fn tolerance(&self) -> crate::conformance::Tolerance {
        match &self.executor {
            #[cfg(feature = "gpu")]
            Executor::Gpu(model) => crate::conformance::Tolerance::of_gpu_plan(model.stats().precision),
            _ => crate::conformance::Tolerance::F32,
        }
    }

    /// The GPU model, when the GPU executor runs this detector.
    #[cfg(feature = "gpu")]
    pub fn gpu_model(&self) -> Option<&crate::gpu::GpuModel> {
        match &self.executor {
            Executor::Gpu(model) => Some(model),
            _ => None,
        }
    }

    /// tract's plan, when tract runs this detector.
    fn tract_plan(&self) -> Result<&Arc<TypedRunnableModel>, ModelError> {
        match &self.executor {
            Executor::Tract(plan) => Ok(plan),
            #[cfg(feature = "onnxruntime")]
            Executor::Onnxruntime(_) => Err(ModelError("onnxruntime runs this model, not tract".into())),
            #[cfg(feature = "gpu")]
            Executor::Gpu(_) => Err(ModelError("the GPU runs this model, not tract".into())),
        }
    }

    /// What the model says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs the graph once on a `[1, 3, S, S]` input, timing every operator with `now_ms` (the
    /// caller's clock: `std::time` has none in a browser). Returns milliseconds summed per
    /// operator kind, slowest first, with how many operators of that kind ran. The run is made
    /// where `run_raw` makes it (in the threaded build, on the awake pool), so that an
    /// operator's time is what it costs in a real run.
    pub fn profile(&self, input: Vec<f32>, now_ms: impl Fn() -> f64 + Send) -> Result<Vec<OperatorTime>, ModelError> {
        let side = self.info.input_size_px as usize;
        let tensor = Tensor::from_shape(&[1, 3, side, side], &input).map_err(|e| err("bad input tensor", e))?;
        let plan = self.tract_plan()?;
        on_inference_thread(move || profile_tract(plan, tensor, now_ms))
    }

    /// As `profile`, awaiting the GPU: on the GPU executor, milliseconds per kernel (each
    /// dispatch waited for on its own, so the sum exceeds a normal run).
    pub async fn profile_async(
        &self,
        input: Vec<f32>,
        now_ms: impl Fn() -> f64 + Send,
    ) -> Result<Vec<OperatorTime>, ModelError> {
        #[cfg(feature = "gpu")]
        if let Executor::Gpu(model) = &self.executor {
            let kernels = model
                .profile(&input, now_ms)
                .await
                .map_err(|e| ModelError(e.to_string()))?;
            return Ok(kernels
                .into_iter()
                .map(|(operator, ms, count)| OperatorTime {
                    operator,
                    ms,
                    count: count as u32,
                })
                .collect());
        }
        self.profile(input, now_ms)
    }

    /// The matrix kernels tract picked for this model's products, by name, sorted: shows which
    /// code the convolutions run on (in the browser, `wasm_gemm`'s).
    pub fn matmul_kernels(&self) -> Vec<String> {
        use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
        let Ok(plan) = self.tract_plan() else {
            return Vec::new();
        };
        let mut names: Vec<String> = (plan.model().nodes.iter())
            .filter_map(|node| node.op_as::<OptMatMul>())
            .flat_map(|op| op.mmm.iter().map(|mmm| mmm.name().to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// How many convolutions pack their im2col panels by rows (`im2col_panels`; the browser's
    /// builds) rather than value by value; 0 when tract does not run the model.
    pub fn im2col_rows(&self) -> usize {
        self.tract_plan()
            .map_or(0, |plan| crate::im2col_panels::count(plan.model()))
    }

    /// The element-wise kernel tract runs this model's SiLU activations on, by name (in the
    /// browser's relaxed-SIMD builds, `wasm_silu`'s); `None` when tract does not run the model
    /// or it has no SiLU of its own — in the browser's builds, the SiLUs after convolutions run
    /// in their matrix kernel instead (`silu_in_products`; `matmul_kernels` names it).
    pub fn silu_kernel(&self) -> Option<String> {
        use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
        use tract_onnx::tract_core::ops::nn::Silu;
        use tract_onnx::tract_core::tract_linalg::Func;
        let plan = self.tract_plan().ok()?;
        let has_silu =
            (plan.model().nodes.iter()).any(|node| node.op_as::<ElementWiseOp>().is_some_and(|op| op.0.is::<Silu>()));
        if !has_silu {
            return None;
        }
        Func::Silu.ew_f32().ok().map(|kernel| kernel.name().to_string())
    }

    /// Runs the graph on a ready `[1, 3, S, S]` input and returns its detection output (and the
    /// embedding, when there is one), in C order. On a browser's GPU use `run_raw_async`.
    pub fn run_raw(&self, input: Vec<f32>) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let side = self.info.input_size_px as usize;
        #[cfg(feature = "onnxruntime")]
        if let Executor::Onnxruntime(session) = &self.executor {
            return session.run(input, side);
        }
        #[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
        if let Executor::Gpu(model) = &self.executor {
            return self.gpu_outputs(model.run_blocking(&input));
        }
        #[cfg(all(feature = "gpu", target_arch = "wasm32"))]
        if let Executor::Gpu(_) = &self.executor {
            return Err(ModelError(
                "a browser's GPU answers asynchronously: use run_raw_async".into(),
            ));
        }
        let tensor = Tensor::from_shape(&[1, 3, side, side], &input).map_err(|e| err("bad input tensor", e))?;
        let plan = self.tract_plan()?;
        let embedding_output = self.embedding_output;
        let run = move || -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
            let outputs = plan
                .run(tvec!(tensor.into()))
                .map_err(|e| err("the model failed to run", chain(&e)))?;
            let flat = |i: usize| -> Result<Vec<f32>, ModelError> {
                let plain = outputs[i].try_as_plain_ram().map_err(|e| err("unreadable output", e))?;
                Ok(plain
                    .as_slice::<f32>()
                    .map_err(|e| err("the output is not f32", e))?
                    .to_vec())
            };
            Ok((flat(0)?, embedding_output.map(flat).transpose()?))
        };
        on_inference_thread(run)
    }

    /// As `run_raw`, awaiting the GPU instead of blocking on it (the only way in a browser).
    pub async fn run_raw_async(&self, input: Vec<f32>) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        #[cfg(feature = "gpu")]
        if let Executor::Gpu(model) = &self.executor {
            return self.gpu_outputs(model.run(&input).await);
        }
        self.run_raw(input)
    }

    /// The GPU's outputs as [detections, embedding?].
    #[cfg(feature = "gpu")]
    fn gpu_outputs(
        &self,
        outputs: Result<Vec<Vec<f32>>, crate::gpu::GpuError>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let mut outputs = outputs.map_err(|e| ModelError(e.to_string()))?.into_iter();
        let detections = outputs
            .next()
            .ok_or_else(|| ModelError("the GPU returned no output".into()))?;
        let embedding = self.embedding_output.and_then(|_| outputs.next());
        Ok((detections, embedding))
    }

    /// Detects objects in an upright image: letterbox, run, keep anchors above `confidence`,
    /// class-wise NMS at `iou`, boxes in image pixels clipped to the image.
    pub fn detect(&self, pixels: Pixels<'_>, confidence: f32, iou: f32) -> Result<Prediction, ModelError> {
        let (input, letterbox) = self.letterbox(pixels)?;
        let (output, embedding) = self.run_raw(input)?;
        Ok(self.finish(output, embedding, letterbox, pixels, confidence, iou))
    }

    /// As `detect`, awaiting the GPU instead of blocking on it (the only way in a browser).
    pub async fn detect_async(&self, pixels: Pixels<'_>, confidence: f32, iou: f32) -> Result<Prediction, ModelError> {
        let (input, letterbox) = self.letterbox(pixels)?;
        let (output, embedding) = self.run_raw_async(input).await?;
        Ok(self.finish(output, embedding, letterbox, pixels, confidence, iou))
    }

    fn letterbox(&self, pixels: Pixels<'_>) -> Result<(Vec<f32>, Letterbox), ModelError> {
        if !pixels.is_consistent() {
            return Err(ModelError(format!(
                "pixel buffer of {} bytes does not match {}×{}×{}",
                pixels.data.len(),
                pixels.width_px,
                pixels.height_px,
                pixels.channels
            )));
        }
        Ok(input_tensor(pixels, self.info.input_size_px))
    }

    fn finish(
        &self,
        output: Vec<f32>,
        embedding: Option<Vec<f32>>,
        letterbox: Letterbox,
        pixels: Pixels<'_>,
        confidence: f32,
        iou: f32,
    ) -> Prediction {
        let mut prediction = postprocess(self.info.layout, &output, letterbox, pixels, confidence, iou);
        prediction.embedding = embedding;
        prediction
    }
}

/// A graph tract has parsed and checked, with what it says about itself.
struct Parsed {
    typed: TypedModel,
    info: ModelInfo,
    embedding_output: Option<usize>,
}

impl Parsed {
    /// Parses ONNX bytes, checks the input is one `[1, 3, S, S]` image and the output a
    /// supported layout, and puts the outputs in the order [detections, embedding?].
    fn read(onnx: &[u8]) -> Result<Self, ModelError> {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        crate::wasm_gemm::link();
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        crate::wasm_silu::link();
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .map_err(|e| err("not a loadable ONNX model", chain(&e)))?;
        let props: Vec<(String, String)> = model
            .properties
            .iter()
            .filter_map(|(key, value)| {
                let key = key.strip_prefix("onnx.metadata_props.")?;
                Some((
                    key.to_string(),
                    value.try_as_plain_ram().ok()?.to_scalar::<String>().ok()?.clone(),
                ))
            })
            .collect();
        let meta = UltralyticsMetadata::from_props(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));

        if model.inputs.len() != 1 {
            return Err(ModelError(format!(
                "expected one image input, the model has {}",
                model.inputs.len()
            )));
        }
        let input_size_px = input_side(&model, &meta)?;
        let side = input_size_px as usize;
        model
            .set_input_fact(0, f32::fact([1, 3, side, side]).into())
            .map_err(|e| err("cannot fix the input shape", chain(&e)))?;
        let typed = model
            .into_typed()
            .map_err(|e| err("the model uses an operator or shape tract cannot run", chain(&e)))?;

        let outputs = typed
            .output_outlets()
            .map_err(|e| err("the model has no outputs", e))?
            .to_vec();
        let output_names: Vec<String> = outputs.iter().map(|o| typed.node(o.node).name.clone()).collect();
        let embedding_output = output_names.iter().position(|name| name.contains("embedding"));
        let detection_output = (0..outputs.len())
            .find(|i| Some(*i) != embedding_output)
            .ok_or_else(|| ModelError("the model has no detection output".into()))?;
        let shape_of = |i: usize| -> Result<Vec<usize>, ModelError> {
            let fact = typed.outlet_fact(outputs[i]).map_err(|e| err("unreadable output", e))?;
            fact.shape.as_concrete().map(|s| s.to_vec()).ok_or_else(|| {
                ModelError(format!(
                    "output {} has a shape that depends on the input: {:?}",
                    output_names[i], fact.shape
                ))
            })
        };
        let layout = OutputLayout::detect(&shape_of(detection_output)?, meta.names.as_ref().map(Vec::len))
            .map_err(ModelError)?;
        let embedding_len = embedding_output
            .map(|i| shape_of(i).map(|s| s.iter().product()))
            .transpose()?;

        let mut typed = typed;
        if detection_output != 0 || embedding_output.is_some() {
            // Keep the order [detections, embedding?] whatever the graph declared.
            let mut order = vec![outputs[detection_output]];
            order.extend(embedding_output.map(|i| outputs[i]));
            typed
                .select_output_outlets(&order)
                .map_err(|e| err("cannot select outputs", e))?;
        }

        let classes = layout.classes();
        let class_names = match meta.names {
            Some(names) => names,
            None => (0..classes).map(|i| format!("class{i}")).collect(),
        };
        let info = ModelInfo {
            input_size_px,
            layout,
            class_names,
            stride: meta.stride,
            embedding_len,
        };
        Ok(Self {
            typed,
            info,
            embedding_output: embedding_output.map(|_| 1),
        })
    }
}

/// Runs one inference where tract runs it fastest. The threaded browser build runs the whole
/// graph on one of the pool's threads: the thread that splits each product then computes a
/// share of it, instead of sleeping until the pool's threads have woken up and finished; the
/// others stay awake meanwhile (`awake_pool`).
fn on_inference_thread<R: Send>(inference: impl FnOnce() -> R + Send) -> R {
    #[cfg(all(feature = "threads", target_arch = "wasm32"))]
    return crate::awake_pool::run(inference);
    #[cfg(not(all(feature = "threads", target_arch = "wasm32")))]
    inference()
}

/// `Detector::profile`'s run: each operator timed with `now_ms`, summed per operator kind.
fn profile_tract(
    plan: &Arc<TypedRunnableModel>,
    input: Tensor,
    now_ms: impl Fn() -> f64,
) -> Result<Vec<OperatorTime>, ModelError> {
    use tract_onnx::tract_core::plan::{SimpleState, eval};
    let mut state = SimpleState::new(plan).map_err(|e| err("cannot start a run", e))?;
    let mut times: Vec<OperatorTime> = Vec::new();
    state
        .run_plan_with_eval(tvec!(input.into()), |session, op_state, node, inputs| {
            let started = now_ms();
            let outputs = eval(session, op_state, node, inputs);
            let ms = now_ms() - started;
            let name = node.op().name();
            match times.iter_mut().find(|t| t.operator == name) {
                Some(t) => {
                    t.ms += ms;
                    t.count += 1;
                }
                None => times.push(OperatorTime {
                    operator: name.to_string(),
                    ms,
                    count: 1,
                }),
            }
            outputs
        })
        .map_err(|e| err("the model failed to run", chain(&e)))?;
    times.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(times)
}

/// tract's optimised plan of a checked graph.
fn tract_plan(typed: TypedModel) -> Result<Arc<TypedRunnableModel>, ModelError> {
    // Read before optimisation, which replaces the convolutions by their matrix products. Only
    // the browser's builds pack by rows: that is where it was measured to pay.
    let convs = cfg!(target_arch = "wasm32").then(|| crate::im2col_panels::conv_geometries(&typed));
    typed
        .into_optimized()
        .and_then(softmax_on_last_axis)
        .and_then(|m| browser_passes(m, convs.as_ref()))
        .and_then(|m| m.into_runnable())
        .map_err(|e| err("the model cannot be optimised for this machine", chain(&e)))
}

/// The browser builds' changes to tract's optimised plan, each measured to pay there (natively
/// the plan stays as tract made it): im2col panels packed by rows (`im2col_panels`, given the
/// convolutions' `convs`), the SiLU after each convolution in its matrix kernel
/// (`silu_in_products`), and padding in one pass, split over the pool with threads
/// (`pad_planes`).
fn browser_passes(model: TypedModel, convs: Option<&HashMap<String, Geometry>>) -> TractResult<TypedModel> {
    let model = match convs {
        Some(convs) => crate::im2col_panels::pack_rows(model, convs)?,
        None => model,
    };
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let model = crate::silu_in_products::fuse(model)?;
    #[cfg(target_arch = "wasm32")]
    let model = crate::pad_planes::pad_planes(model)?;
    Ok(model)
}

/// The executor for a graph the GPU executor was asked to compile: its plan, or tract's
/// with the reason the GPU could not take the graph.
#[cfg(feature = "gpu")]
fn gpu_or_tract(
    typed: TypedModel,
    compiled: Result<crate::gpu::GpuModel, crate::gpu::GpuError>,
) -> Result<(Executor, Option<String>), ModelError> {
    Ok(match compiled {
        Ok(model) => (Executor::Gpu(model), None),
        Err(why) => (Executor::Tract(tract_plan(typed)?), Some(why.to_string())),
    })
}

/// Why a detector cannot be loaded on the GPU.
#[cfg(feature = "gpu")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuLoadError {
    /// The model itself is unusable, whatever runs it.
    Model(ModelError),
    /// The GPU executor cannot run it (or the device failed); tract still can.
    Gpu(crate::gpu::GpuError),
}

#[cfg(feature = "gpu")]
impl std::fmt::Display for GpuLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuLoadError::Model(e) => e.fmt(f),
            GpuLoadError::Gpu(e) => e.fmt(f),
        }
    }
}

#[cfg(feature = "gpu")]
impl std::error::Error for GpuLoadError {}

/// A detector's output for one image turned into detections: anchors above `confidence`,
/// class-wise NMS at `iou` (unless the graph did it), boxes mapped through the letterbox into
/// image pixels and clipped. What [`Detector::detect`] does after running the graph, shared
/// with the trainer, which runs its own network.
pub fn postprocess(
    layout: OutputLayout,
    output: &[f32],
    letterbox: Letterbox,
    image: Pixels<'_>,
    confidence: f32,
    iou: f32,
) -> Prediction {
    // Decode everything with a positive score once: the best one ranks an image that has no
    // confident detection.
    let mut candidates = layout.decode(output, 0.0);
    let best_candidate_score = candidates.iter().map(|c| c.score).fold(0.0, f32::max);
    candidates.retain(|c| c.score > confidence);
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(MAX_NMS_CANDIDATES);
    let detections: Vec<Detection> = candidates
        .into_iter()
        .map(|c| Detection {
            class_index: c.class_index,
            score: c.score,
            bbox: letterbox.box_to_image(c.bbox, image.width_px, image.height_px),
            class_scores: c.class_scores,
        })
        .collect();
    let mut detections = if layout.is_end_to_end() {
        detections
    } else {
        non_max_suppression(detections, iou)
    };
    detections.truncate(MAX_DETECTIONS);
    Prediction {
        detections,
        best_candidate_score,
        embedding: None,
    }
}

/// The square input side: from the graph when it is fixed, else from `imgsz`.
fn input_side(model: &InferenceModel, meta: &UltralyticsMetadata) -> Result<u32, ModelError> {
    let fact = model.input_fact(0).map_err(|e| err("unreadable input", e))?;
    let rank = fact.shape.rank();
    if let Some(rank) = rank.concretize()
        && rank != 4
    {
        return Err(ModelError(format!(
            "the input has rank {rank}; a detector takes one [1, 3, H, W] image"
        )));
    }
    let dims: Vec<Option<usize>> = fact
        .shape
        .dims()
        .map(|d| {
            d.concretize()
                .and_then(|d| d.as_i64())
                .and_then(|d| usize::try_from(d).ok())
        })
        .collect();
    let fixed = match dims[..] {
        [_, Some(c), _, _] if c != 3 => {
            return Err(ModelError(format!(
                "the input has {c} channels; a detector takes RGB (3)"
            )));
        }
        [_, _, Some(h), Some(w)] if h != w => {
            return Err(ModelError(format!(
                "the input is {w}×{h}; only square inputs are supported"
            )));
        }
        [_, _, Some(h), Some(_)] => Some(h as u32),
        _ => None,
    };
    let side = fixed.or(meta.imgsz.filter(|[h, w]| h == w).map(|[h, _]| h));
    match side {
        Some(side) if (32..=4096).contains(&side) => Ok(side),
        Some(side) => Err(ModelError(format!("input size {side} is outside 32..4096"))),
        None => Err(ModelError(
            "the input size is dynamic and the metadata has no square imgsz".into(),
        )),
    }
}

/// Moves every single-axis softmax that is not over the last axis onto the last axis.
///
/// YOLOv8/11's DFL head takes a softmax over the 16 distance bins, axis 1 of `[1, 16, 4, N]`.
/// tract runs a softmax over an inner axis one strided lane at a time (a fifth of a whole
/// yolov8n-320 run); over the last axis it runs its SIMD row kernel. Two transposes of the small
/// tensor cost far less. Done after optimisation, which would otherwise fold the transposes back
/// into the softmax.
fn softmax_on_last_axis(mut model: TypedModel) -> TractResult<TypedModel> {
    use tract_onnx::tract_core::ops::change_axes::AxisOp;
    use tract_onnx::tract_core::ops::nn::Softmax;

    let inner: Vec<(usize, Softmax, usize)> = model
        .nodes()
        .iter()
        .filter_map(|node| {
            let softmax = node.op_as::<Softmax>()?;
            let rank = model.outlet_fact(node.inputs[0]).ok()?.rank();
            match softmax.axes.as_slice() {
                [axis] if *axis + 1 < rank => Some((node.id, softmax.clone(), rank)),
                _ => None,
            }
        })
        .collect();
    for (id, softmax, rank) in inner {
        let node = model.node(id);
        let (name, input, axis) = (node.name.clone(), node.inputs[0], softmax.axes[0]);
        let last = rank - 1;
        let mut patch = TypedModelPatch::default();
        let mut wire = patch.tap_model(&model, input)?;
        wire = patch.wire_node(format!("{name}.to_last"), AxisOp::Move(axis, last), &[wire])?[0];
        let on_last = Softmax {
            axes: tvec!(last),
            ..softmax
        };
        wire = patch.wire_node(format!("{name}.on_last"), on_last, &[wire])?[0];
        wire = patch.wire_node(format!("{name}.back"), AxisOp::Move(last, axis), &[wire])?[0];
        patch.shunt_outside(&model, id.into(), wire)?;
        patch.apply(&mut model)?;
    }
    Ok(model)
}

/// tract's error with its causes, on one line.
fn chain(e: &TractError) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::nn::Softmax;

    use super::*;

    #[test]
    fn dfl_softmax_runs_on_the_last_axis() -> anyhow::Result<()> {
        let onnx = std::fs::read(crate::conformance::reference_models_dir().join("yolov8n-320-random.onnx"))?;
        let detector = Detector::load(&onnx).map_err(|e| anyhow::anyhow!(e.0))?;
        let model = detector.tract_plan().map_err(|e| anyhow::anyhow!(e.0))?.model();
        let mut softmaxes = 0;
        for node in model.nodes() {
            if let Some(softmax) = node.op_as::<Softmax>() {
                let rank = model.outlet_fact(node.inputs[0])?.rank();
                assert_eq!(softmax.axes.as_slice(), &[rank - 1], "{}", node.name);
                softmaxes += 1;
            }
        }
        assert_eq!(softmaxes, 1, "the DFL head has one softmax");
        Ok(())
    }
}
