//! The student detector's life cycle: evaluation (mAP, per-class precision and recall, the
//! confusion matrix — the figures every model is judged by) and the student network (`yolo`,
//! YOLOv8n in burn, loading Ultralytics' weights from ONNX); the training loop and ONNX export
//! build on them.
//!
//! Boundary: never a dependency of `frontend` — training stays on the server.

#[cfg(feature = "student")]
pub mod assign;
#[cfg(feature = "student")]
pub mod augment;
#[cfg(feature = "student")]
pub mod checkpoint;
#[cfg(feature = "student")]
pub mod clip;
pub mod confusion;
#[cfg(feature = "student")]
pub mod device;
#[cfg(feature = "student")]
pub mod ema;
pub mod evaluate;
#[cfg(feature = "student")]
pub mod export;
#[cfg(feature = "student")]
pub mod folder;
#[cfg(feature = "student")]
pub mod loss;
#[cfg(feature = "student")]
pub mod memory;
pub mod quality;
#[cfg(feature = "student")]
pub mod trainer;
#[cfg(feature = "student")]
pub mod weights;
#[cfg(feature = "student")]
pub mod yolo;

pub use confusion::ConfusionMatrix;
pub use evaluate::{GroundTruth, Prediction, average_precision, mean_average_precision};
pub use quality::{ClassQuality, Evaluation, evaluate};
