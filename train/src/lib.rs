//! The student detector's life cycle: evaluation (mAP, per-class precision and recall, the
//! confusion matrix — the figures every model is judged by) and the student network (`yolo`,
//! YOLOv8n in burn, loading Ultralytics' weights from ONNX); the training loop and ONNX export
//! build on them.
//!
//! Boundary: never a dependency of `frontend` — training stays on the server.

pub mod confusion;
pub mod evaluate;
pub mod quality;
#[cfg(feature = "student")]
pub mod weights;
#[cfg(feature = "student")]
pub mod yolo;

pub use confusion::ConfusionMatrix;
pub use evaluate::{GroundTruth, Prediction, average_precision, mean_average_precision};
pub use quality::{ClassQuality, Evaluation, evaluate};
