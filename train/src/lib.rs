//! The student detector's life cycle: evaluation today (mAP, per-class precision and recall, the
//! confusion matrix — the figures every model is judged by); the burn training loop and ONNX
//! export build on it.
//!
//! Boundary: never a dependency of `frontend` — training stays on the server.

pub mod confusion;
pub mod evaluate;
pub mod quality;

pub use confusion::ConfusionMatrix;
pub use evaluate::{GroundTruth, Prediction, average_precision, mean_average_precision};
pub use quality::{ClassQuality, Evaluation, evaluate};
