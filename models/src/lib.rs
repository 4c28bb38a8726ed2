//! Detector runtime shared by the server and the browser: the geometry around a model run
//! (letterbox in, boxes out) and class-wise non-maximum suppression, per DESIGN's
//! "Model runtime contract".
//!
//! Invariant: builds for `wasm32-unknown-unknown`; spawns no threads and touches no filesystem,
//! so the exact same code runs in a browser worker and on the server.

pub mod letterbox;
pub mod nms;

pub use letterbox::Letterbox;
pub use nms::{Detection, iou, non_max_suppression};
