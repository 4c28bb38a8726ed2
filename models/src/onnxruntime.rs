//! onnxruntime as the executor of a detector (feature `onnxruntime`, native only), for servers
//! that have it: its CPU kernels are about twice as fast as tract's on these graphs, and its CUDA
//! provider puts a teacher on the GPU. The library is one the user installs (the `onnxruntime` or
//! `onnxruntime-gpu` wheel from PyPI ships `libonnxruntime.so`) and names at run time; nothing is
//! linked or downloaded at build time. tract still parses the graph, checks it and says what it
//! is (`Detector::load`); onnxruntime only runs it.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

use crate::ModelError;

/// Where onnxruntime runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrtDevice {
    /// Its CPU provider.
    Cpu,
    /// Its CUDA provider (needs `libonnxruntime_providers_cuda.so` beside the library and a GPU);
    /// loading fails with the provider's reason when it cannot start.
    Cuda,
}

impl OrtDevice {
    /// "onnxruntime (cpu)" or "onnxruntime (cuda)".
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "onnxruntime (cpu)",
            Self::Cuda => "onnxruntime (cuda)",
        }
    }
}

/// The process's onnxruntime: one library, one environment, for every model.
static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

/// Loads `libonnxruntime` from `library` once per process; later calls keep the first.
pub fn init(library: &Path) -> Result<(), ModelError> {
    if ENVIRONMENT.get().is_some() {
        return Ok(());
    }
    let environment = ort::init_from(library)
        .map_err(|e| ModelError(format!("cannot load onnxruntime from {}: {e}", library.display())))?
        .with_name("distillery")
        .build()
        .map_err(|e| ModelError(format!("cannot start onnxruntime: {e}")))?;
    let _ = ENVIRONMENT.set(environment);
    Ok(())
}

/// One model as an onnxruntime session.
pub struct OrtModel {
    // `Session::run` takes `&mut`; images queue here while decoding runs on other threads.
    session: Mutex<Session>,
    detection_output: usize,
    embedding_output: Option<usize>,
}

impl std::fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtModel").finish_non_exhaustive()
    }
}

impl OrtModel {
    /// A session for `onnx` on `device`, using `threads` threads inside each operator.
    pub fn load(onnx: &[u8], device: OrtDevice, threads: usize) -> Result<Self, ModelError> {
        let environment = ENVIRONMENT
            .get()
            .ok_or_else(|| ModelError("onnxruntime was not loaded (call models::onnxruntime::init)".into()))?;
        let failed = |e: ort::Error| ModelError(format!("onnxruntime cannot load the model: {e}"));
        let mut builder = Session::builder(environment)
            .map_err(failed)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| failed(e.into()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| failed(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| failed(e.into()))?;
        if device == OrtDevice::Cuda {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| failed(e.into()))?;
        }
        let session = builder.commit_from_memory(onnx).map_err(failed)?;
        // The same rule as tract's side: an output named like an embedding is one, the first
        // other output holds the detections.
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let embedding_output = names.iter().position(|n| n.contains("embedding"));
        let detection_output = (0..names.len())
            .find(|i| Some(*i) != embedding_output)
            .ok_or_else(|| ModelError("the model has no detection output".into()))?;
        Ok(Self {
            session: Mutex::new(session),
            detection_output,
            embedding_output,
        })
    }

    /// Runs a ready `[1, 3, side, side]` input: the detection output and the embedding, flat.
    pub fn run(&self, input: Vec<f32>, side: usize) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let failed = |e: ort::Error| ModelError(format!("onnxruntime failed to run the model: {e}"));
        let tensor = Tensor::from_array(([1usize, 3, side, side], input)).map_err(failed)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| ModelError("an earlier run of this model crashed".into()))?;
        let outputs = session.run(ort::inputs![tensor]).map_err(failed)?;
        let flat = |i: usize| -> Result<Vec<f32>, ModelError> {
            let (_, data) = outputs[i].try_extract_tensor::<f32>().map_err(failed)?;
            Ok(data.to_vec())
        };
        let detections = flat(self.detection_output)?;
        let embedding = self.embedding_output.map(flat).transpose()?;
        Ok((detections, embedding))
    }
}
