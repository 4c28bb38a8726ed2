//! Messages between the web app and its inference worker (`frontend/worker`), as JSON strings.
//! Both sides use these types, so they cannot disagree.

use serde::{Deserialize, Serialize};

/// What the app asks the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Pre-label one image with the model at `model_url` (loaded once, cached across reloads).
    Detect {
        id: u32,
        model_url: String,
        image_id: i64,
        image_url: String,
        /// Lowest score returned; the editor's threshold slider filters further.
        confidence: f32,
    },
    /// Run a model on a reference input and compare with the reference output (.npy files).
    Conformance {
        id: u32,
        model_url: String,
        input_url: String,
        output_url: String,
    },
    /// Time repeated runs of a model on a reference input.
    Bench {
        id: u32,
        model_url: String,
        input_url: String,
        warmup: u32,
        runs: u32,
    },
}

impl ToWorker {
    pub fn id(&self) -> u32 {
        match self {
            Self::Detect { id, .. } | Self::Conformance { id, .. } | Self::Bench { id, .. } => *id,
        }
    }

    pub fn set_id(&mut self, new_id: u32) {
        match self {
            Self::Detect { id, .. } | Self::Conformance { id, .. } | Self::Bench { id, .. } => *id = new_id,
        }
    }
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
    pub class_index: u32,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// What the worker answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker has started and listens; requests sent before this would be lost.
    Ready,
    Detected {
        id: u32,
        image_id: i64,
        proposals: Vec<Proposal>,
        /// Scores at the proposal threshold (0.25), for the ranking.
        report: crate::ImagePrediction,
        model_source: ModelSource,
        /// Decode + letterbox + model + NMS, milliseconds.
        inference_ms: f64,
    },
    Conformance {
        id: u32,
        max_box_diff: f32,
        max_score_diff: f32,
        within_tolerance: bool,
        /// The matrix kernels the run went through (`Detector::matmul_kernels`).
        matmul_kernels: Vec<String>,
    },
    Bench {
        id: u32,
        load_ms: f64,
        times_ms: Vec<f64>,
        /// One more run, timed per operator kind, slowest first.
        operators: Vec<OperatorTime>,
    },
    Failed {
        id: u32,
        message: String,
    },
}

impl FromWorker {
    pub fn id(&self) -> u32 {
        match self {
            Self::Ready => 0,
            Self::Detected { id, .. }
            | Self::Conformance { id, .. }
            | Self::Bench { id, .. }
            | Self::Failed { id, .. } => *id,
        }
    }
}

/// Time spent in one kind of operator during a profiled run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorTime {
    /// tract's operator name, e.g. `OptMatMul`.
    pub operator: String,
    pub ms: f64,
    /// How many operators of this kind ran.
    pub count: u32,
}
