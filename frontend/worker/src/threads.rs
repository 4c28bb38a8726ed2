//! The threaded build's pool: one Web Worker per logical core, started by `wasm-bindgen-rayon` on
//! this worker's shared memory, which tract's kernels then split their work over. This worker
//! itself only waits while they compute, so the pool has as many threads as the machine has
//! cores. The app starts this build only where the page is cross-origin isolated (shared memory
//! needs it).

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Starts the pool and gives it to tract. Returns how many threads run a model: the pool's
/// size, or 1 when it could not start (the model then runs here, on one thread).
pub async fn start_pool() -> usize {
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let cores = scope.navigator().hardware_concurrency() as usize;
    let threads = cores.clamp(1, MAX_THREADS);
    if threads < 2 {
        return 1;
    }
    match JsFuture::from(wasm_bindgen_rayon::init_thread_pool(threads)).await {
        Ok(_) => {
            models::use_rayon_global_pool();
            threads
        }
        Err(error) => {
            web_sys::console::warn_1(&format!("no thread pool, one thread runs the model: {error:?}").into());
            1
        }
    }
}

/// A cap, so a many-core machine does not start dozens of workers (each compiles its own
/// instance of the module) for matrix products that split into a few dozen tiles.
const MAX_THREADS: usize = 8;
