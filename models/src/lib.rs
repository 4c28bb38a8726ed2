//! Detector runtime shared by the server and the browser (DESIGN, "Model runtime contract"):
//! load an ONNX detector with tract, letterbox an image into it, decode its output layout,
//! class-wise NMS, and boxes back in upright image pixels — with each detection's class-score
//! vector kept for uncertainty ranking.
//!
//! Invariant: builds for `wasm32-unknown-unknown`; spawns no threads and touches no filesystem,
//! so the exact same code runs in a browser worker and on the server (the worker's threaded build
//! hands tract a pool of Web Workers it made itself: `use_rayon_global_pool`). The one exception is the
//! native-only `onnxruntime` feature, which loads the user's onnxruntime library on a server.

// DESIGN's rule, enforced: every public item says what it is for.
#![warn(missing_docs)]

#[cfg(all(feature = "threads", target_arch = "wasm32"))]
mod awake_pool;
pub mod conformance;
pub mod detector;
#[cfg(feature = "gpu")]
pub mod gpu;
mod im2col_panels;
pub mod layout;
pub mod letterbox;
pub mod metadata;
pub mod nms;
pub mod npy;
#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
#[cfg(feature = "op-cases")]
pub mod op_cases;
#[cfg(any(test, target_arch = "wasm32"))]
mod pad_planes;
#[cfg(test)]
mod plan_swaps;
pub mod preprocess;
pub mod report;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod silu_in_products;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_gemm;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_silu;

#[cfg(feature = "gpu")]
pub use detector::GpuLoadError;
pub use detector::{
    DEFAULT_CONFIDENCE, DEFAULT_IOU, Detector, ModelError, ModelInfo, Prediction, Runtime, postprocess,
};
pub use layout::OutputLayout;
pub use letterbox::Letterbox;
pub use nms::{Detection, iou, non_max_suppression};
pub use preprocess::Pixels;

/// Splits tract's matrix products, packing and element-wise kernels over rayon's global pool
/// from now on. In a browser that pool is the Web Workers `wasm-bindgen-rayon` started on the
/// same shared memory; each product is cut along its output panels, so results do not depend on
/// the number of threads.
///
/// tract cuts a product into up to four chunks per thread where its packed operands are small
/// (a browser hides its cache sizes, so that is always its gate). One chunk per thread
/// (`TRACT_MMM_CHUNKS_PER_THREAD`), which packs each im2col panel fewer times, measured no
/// better on two threads: yolov8n-320 47.6 against onnxruntime-web's 45.7 ms and -640 166.0
/// against 161.4, where tract's choice gave 46.0 against 44.0 and 158.7 against 159.5 in the run
/// before it. So tract's choice stays.
#[cfg(all(feature = "threads", target_arch = "wasm32"))]
pub fn use_rayon_global_pool() {
    tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::RayonGlobal);
}
