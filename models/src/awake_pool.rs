//! The threaded browser build's way of running one inference on rayon's pool with every thread
//! awake for its whole length.
//!
//! tract splits each product, packing and element-wise step into its own parallel region — about
//! 220 per yolov8n inference. Between two regions rayon puts an idle thread to sleep
//! (`Atomics.wait` in a browser), and waking it again costs tens of microseconds per region, on
//! the thread that splits the work as well as on the one that wakes. So for the length of one
//! inference every other pool thread runs a job that keeps taking the pool's work
//! (`rayon::yield_now`) until the inference ends: a split is picked up within a spin, and nobody
//! sleeps. onnxruntime-web's own pool spins the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `inference` on one of the pool's threads while the others stay awake taking its work.
pub(crate) fn run<R: Send>(inference: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| {
        let finished = Arc::new(AtomicBool::new(false));
        let inference_thread = rayon::current_thread_index();
        let keep_awake = {
            let finished = Arc::clone(&finished);
            move |thread: rayon::BroadcastContext<'_>| {
                // The inference's own thread gets a copy too (a broadcast reaches every thread);
                // it must not spin, or it would wait on itself.
                if Some(thread.index()) == inference_thread {
                    return;
                }
                while !finished.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            }
        };
        rayon::spawn_broadcast(keep_awake);
        let result = inference();
        finished.store(true, Ordering::Release);
        result
    })
}
