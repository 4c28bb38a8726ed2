//! The app's side of the inference worker: starts it, sends requests and routes the answers
//! back to whoever asked. If the worker dies (a trap, out of memory), every waiting request
//! fails with the reason and the next request starts a fresh worker.

use std::cell::RefCell;
use std::collections::HashMap;

use futures_channel::oneshot;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use api::worker::{FromWorker, ToWorker};

/// One build of the inference worker in `dist/`: the script that starts it, and whether that
/// script is an ES module.
#[derive(Clone, Copy)]
struct WorkerScript {
    url: &'static str,
    module: bool,
}

/// The build Trunk makes (`frontend/worker`, `data-loader-shim`): wasm SIMD128, one thread.
const SIMD128_WORKER: WorkerScript = WorkerScript {
    url: "/worker_loader.js",
    module: false,
};
/// The same worker built with relaxed SIMD by `cargo xtask build-web`: faster where it runs.
const RELAXED_SIMD_WORKER: WorkerScript = WorkerScript {
    url: "/worker_relaxed_loader.js",
    module: false,
};
/// Relaxed SIMD on a pool of threads sharing one memory (`cargo xtask build-web`): a module,
/// since its pool's workers import it by URL.
const THREADED_WORKER: WorkerScript = WorkerScript {
    url: "/worker_threads_loader.js",
    module: true,
};

/// A module whose one function uses `i8x16.relaxed_swizzle`: it validates exactly where the
/// browser has relaxed SIMD (the test wasm-feature-detect uses).
const RELAXED_SIMD_PROBE: [u8; 36] = [
    0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15,
    253, 128, 2, 11,
];

/// The fastest worker build this browser runs: threads need shared memory, which browsers give
/// only to cross-origin isolated pages (the server sends COOP/COEP), and more than one core.
fn worker_script() -> WorkerScript {
    let probe = js_sys::Uint8Array::from(&RELAXED_SIMD_PROBE[..]);
    if !matches!(js_sys::WebAssembly::validate(&probe), Ok(true)) {
        return SIMD128_WORKER;
    }
    let Some(window) = web_sys::window() else {
        return RELAXED_SIMD_WORKER;
    };
    let isolated =
        js_sys::Reflect::get(&window, &JsValue::from_str("crossOriginIsolated")).is_ok_and(|value| value.is_truthy());
    if isolated && window.navigator().hardware_concurrency() > 1.0 {
        THREADED_WORKER
    } else {
        RELAXED_SIMD_WORKER
    }
}

type Answer = Result<FromWorker, String>;

#[derive(Default)]
struct Host {
    worker: Option<Worker>,
    /// Requests written before the worker said `Ready` (a message it is sent earlier is lost,
    /// since its handler is installed only once its wasm has started).
    unsent: Option<Vec<String>>,
    next_id: u32,
    waiting: HashMap<u32, oneshot::Sender<Answer>>,
    /// Foreground requests (the image on screen) in flight; background pre-labeling waits.
    foreground: u32,
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host::default());
}

/// Sends a request to the worker and waits for its answer.
pub async fn ask(mut request: ToWorker, foreground: bool) -> Answer {
    let (sender, receiver) = oneshot::channel();
    let sent = HOST.with(|host| -> Result<(), String> {
        let mut host = host.borrow_mut();
        let host = &mut *host;
        host.next_id = host.next_id.wrapping_add(1).max(1);
        let id = host.next_id;
        request.set_id(id);
        if host.worker.is_none() {
            host.worker = Some(start_worker()?);
            host.unsent = Some(Vec::new());
        }
        let json = serde_json::to_string(&request).map_err(|e| e.to_string())?;
        match (&mut host.unsent, &host.worker) {
            (Some(unsent), _) => unsent.push(json),
            (None, Some(worker)) => worker
                .post_message(&JsValue::from_str(&json))
                .map_err(|e| format!("{e:?}"))?,
            (None, None) => return Err("the model worker is not running".into()),
        }
        host.waiting.insert(id, sender);
        if foreground {
            host.foreground += 1;
        }
        Ok(())
    });
    sent?;
    let answer = receiver
        .await
        .unwrap_or_else(|_| Err("the model worker stopped".into()));
    if foreground {
        HOST.with(|host| host.borrow_mut().foreground -= 1);
    }
    answer
}

/// Whether an image on screen is waiting for the worker.
pub fn foreground_busy() -> bool {
    HOST.with(|host| host.borrow().foreground > 0)
}

fn start_worker() -> Result<Worker, String> {
    let script = worker_script();
    let options = WorkerOptions::new();
    if script.module {
        options.set_type(WorkerType::Module);
    }
    let worker =
        Worker::new_with_options(script.url, &options).map_err(|e| format!("cannot start the model worker: {e:?}"))?;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        let Some(text) = event.data().as_string() else {
            return;
        };
        let Ok(answer) = serde_json::from_str::<FromWorker>(&text) else {
            return;
        };
        if answer == FromWorker::Ready {
            HOST.with(|host| {
                let mut host = host.borrow_mut();
                let unsent = host.unsent.take().unwrap_or_default();
                if let Some(worker) = &host.worker {
                    for json in unsent {
                        let _ = worker.post_message(&JsValue::from_str(&json));
                    }
                }
            });
            return;
        }
        let sender = HOST.with(|host| {
            let mut host = host.borrow_mut();
            host.waiting.remove(&answer.id())
        });
        if let Some(sender) = sender {
            let _ = sender.send(match answer {
                FromWorker::Failed { message, .. } => Err(message),
                other => Ok(other),
            });
        }
    });
    let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(|event: ErrorEvent| {
        event.prevent_default();
        let reason = format!("the model worker crashed ({}); it has been restarted", event.message());
        let waiting: Vec<_> = HOST.with(|host| {
            let mut host = host.borrow_mut();
            if let Some(worker) = host.worker.take() {
                worker.terminate();
            }
            host.unsent = None;
            host.waiting.drain().map(|(_, sender)| sender).collect()
        });
        for sender in waiting {
            let _ = sender.send(Err(reason.clone()));
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    // They live as long as the page: a worker is started once per crash at most.
    on_message.forget();
    on_error.forget();
    Ok(worker)
}

/// `window.distilleryWorker(json)`: lets the browser tests and `cargo xtask bench-browser` drive
/// the real worker (conformance and timing runs) and read its JSON answer.
pub fn expose_to_scripts() {
    let call = Closure::<dyn Fn(String) -> js_sys::Promise>::new(|json: String| {
        wasm_bindgen_futures::future_to_promise(async move {
            let request: ToWorker = serde_json::from_str(&json).map_err(|e| JsValue::from_str(&e.to_string()))?;
            let answer = ask(request, false).await.map_err(|e| JsValue::from_str(&e))?;
            let text = serde_json::to_string(&answer).map_err(|e| JsValue::from_str(&e.to_string()))?;
            Ok(JsValue::from_str(&text))
        })
    });
    if let Some(window) = web_sys::window() {
        let _ = js_sys::Reflect::set(&window, &JsValue::from_str("distilleryWorker"), call.as_ref());
    }
    call.forget();
}
