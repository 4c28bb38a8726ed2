//! The student detector's life cycle: evaluation today (mAP, the figure every training run is
//! judged by); the burn training loop and ONNX export build on it.
//!
//! Boundary: never a dependency of `frontend` — training stays on the server.

pub mod evaluate;

pub use evaluate::{GroundTruth, Prediction, average_precision, mean_average_precision};
