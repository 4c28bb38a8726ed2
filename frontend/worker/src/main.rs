//! The inference worker: runs ONNX detectors (the `models` crate: its GPU executor on WebGPU, or
//! tract compiled to wasm) off the UI thread. Requests arrive as JSON (`api::worker::ToWorker`)
//! and are handled one at a time, in order; model bytes come from Cache Storage when this
//! browser has fetched them before.

mod engine;
#[cfg(feature = "threads")]
mod threads;

use std::rc::Rc;

use api::worker::{Engine, EngineChoice, EngineKind, FromWorker, GpuWork, ModelSource, Proposal, ToWorker};
use futures_channel::mpsc;
use futures_util::StreamExt;
use js_sys::{Promise, Uint8Array};
use models::conformance::{Tolerance, compare_values};
use models::gpu::{GpuModel, Precision};
use models::{DEFAULT_CONFIDENCE, Detector, Pixels};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, OffscreenCanvasRenderingContext2d, Response};

use crate::engine::Engines;

/// Cache Storage bucket for model bytes (URLs are content-addressed, so entries never go stale).
const MODEL_CACHE: &str = "distillery-models";

fn main() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let (sender, mut requests) = mpsc::unbounded::<String>();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string() {
            let _ = sender.unbounded_send(text);
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    if let Ok(ready) = serde_json::to_string(&FromWorker::Ready) {
        let _ = scope.post_message(&JsValue::from_str(&ready));
    }
    wasm_bindgen_futures::spawn_local(async move {
        // Requests sent meanwhile wait in the channel.
        #[cfg(feature = "threads")]
        let cpu_threads = threads::start_pool().await;
        #[cfg(not(feature = "threads"))]
        let cpu_threads = 1;
        let mut worker = Worker {
            loaded: None,
            engines: Engines::new(cpu_threads),
        };
        while let Some(text) = requests.next().await {
            let answer = match serde_json::from_str::<ToWorker>(&text) {
                Ok(request) => {
                    let id = request.id();
                    worker
                        .handle(request)
                        .await
                        .unwrap_or_else(|message| FromWorker::Failed { id, message })
                }
                Err(error) => FromWorker::Failed {
                    id: 0,
                    message: format!("unreadable request: {error}"),
                },
            };
            if let Ok(json) = serde_json::to_string(&answer) {
                let _ = scope.post_message(&JsValue::from_str(&json));
            }
        }
    });
}

/// The loaded model and the GPU device, kept between requests.
struct Worker {
    loaded: Option<Loaded>,
    engines: Engines,
}

/// A model ready to run, and what it was loaded from and on.
struct Loaded {
    url: String,
    choice: EngineChoice,
    detector: Rc<Detector>,
    engine: Engine,
}

impl Worker {
    async fn handle(&mut self, request: ToWorker) -> Result<FromWorker, String> {
        match request {
            ToWorker::Detect {
                id,
                model_url,
                image_id,
                image_url,
                confidence,
                engine,
            } => {
                let (detector, engine, model_source) = self.model(&model_url, engine).await?;
                let started = now_ms();
                let rgba = decode_image(&image_url).await?;
                let pixels = Pixels {
                    data: &rgba.data,
                    width_px: rgba.width,
                    height_px: rgba.height,
                    channels: 4,
                };
                let mut prediction = detector
                    .detect_async(pixels, confidence.min(DEFAULT_CONFIDENCE), models::DEFAULT_IOU)
                    .await
                    .map_err(|e| e.0)?;
                let inference_ms = now_ms() - started;
                let proposals = prediction
                    .detections
                    .iter()
                    .map(|d| Proposal {
                        class_index: d.class_index as u32,
                        score: d.score,
                        bbox: d.bbox,
                    })
                    .collect();
                // The ranking uses Ultralytics' proposal threshold whatever the slider shows;
                // NMS keeps higher scores first, so filtering afterwards gives the same boxes.
                prediction.detections.retain(|d| d.score > DEFAULT_CONFIDENCE);
                let report = models::report::image_prediction(image_id, &prediction);
                Ok(FromWorker::Detected {
                    id,
                    image_id,
                    proposals,
                    report,
                    model_source,
                    inference_ms,
                    engine,
                })
            }
            ToWorker::Prepare { id, model_url, engine } => {
                let (detector, engine, model_source) = self.model(&model_url, engine).await?;
                if model_source != ModelSource::Memory {
                    // A first run allocates every intermediate tensor: natively it takes twice a
                    // warm one. Done here, the person's first image does not wait for it.
                    let side = detector.info().input_size_px as usize;
                    detector
                        .run_raw_async(vec![0.0; 3 * side * side])
                        .await
                        .map_err(|e| e.0)?;
                }
                Ok(FromWorker::Prepared {
                    id,
                    model_source,
                    engine,
                })
            }
            ToWorker::Conformance {
                id,
                model_url,
                input_url,
                output_url,
                engine,
                gpu_convolution,
            } => {
                let bytes = fetch_bytes(&model_url).await?;
                let (detector, engine) = self.engines.load(&bytes, engine, gpu_convolution).await?;
                let input = models::npy::read_f32(&fetch_bytes(&input_url).await?)?;
                let expected = models::npy::read_f32(&fetch_bytes(&output_url).await?)?;
                let (output, _) = detector.run_raw_async(input.data).await.map_err(|e| e.0)?;
                let report = models::conformance::compare(detector.info(), &output, &expected)?;
                Ok(FromWorker::Conformance {
                    id,
                    max_box_diff: report.max_box_diff,
                    max_score_diff: report.max_score_diff,
                    reference_detections: report.reference_detections as u32,
                    detections: report.detections as u32,
                    matched_detections: report.matched_detections as u32,
                    min_detection_iou: report.min_detection_iou,
                    within_tolerance: report.within(detector.tolerance()),
                    matmul_kernels: detector.matmul_kernels(),
                    im2col_rows: detector.im2col_rows() as u32,
                    silu_kernel: detector.silu_kernel(),
                    gpu_kernels: (detector.gpu_model())
                        .map(|model| model.stats().kernels.iter().map(|(name, _)| name.clone()).collect())
                        .unwrap_or_default(),
                    engine,
                })
            }
            ToWorker::OperatorCase {
                id,
                model_url,
                input_url,
                output_url,
                gpu_convolution,
            } => {
                let device = self.engines.gpu_device(gpu_convolution).await?;
                let model = GpuModel::compile_onnx(&fetch_bytes(&model_url).await?, &device).await?;
                let input = models::npy::read_f32(&fetch_bytes(&input_url).await?)?;
                let expected = models::npy::read_f32(&fetch_bytes(&output_url).await?)?;
                let outputs = model.run(&input.data).await.map_err(|e| e.to_string())?;
                let compared = compare_values(outputs.first().ok_or("the graph has no output")?, &expected)?;
                let stats = model.stats();
                Ok(FromWorker::OperatorCase {
                    id,
                    largest_difference: compared.largest_difference,
                    scale: compared.scale,
                    within_tolerance: compared.within(Tolerance::of_gpu_plan(stats.precision)),
                    precision: match stats.precision {
                        Precision::F32 => "f32",
                        Precision::F16 => "f16",
                    }
                    .to_owned(),
                    gpu_kernels: stats.kernels.iter().map(|(name, _)| name.clone()).collect(),
                    engine: Engine {
                        kind: EngineKind::Webgpu,
                        name: device.name.clone(),
                        not_on_gpu: None,
                    },
                })
            }
            ToWorker::Bench {
                id,
                model_url,
                input_url,
                warmup,
                runs,
                engine,
            } => {
                let bytes = fetch_bytes(&model_url).await?;
                let started = now_ms();
                // Parsing, optimising and, on the GPU, uploading weights and building every
                // pipeline: what the first image waits for beyond one run.
                let (detector, engine) = self.engines.load(&bytes, engine, None).await?;
                let load_ms = now_ms() - started;
                let input = models::npy::read_f32(&fetch_bytes(&input_url).await?)?;
                let mut times_ms = Vec::with_capacity(runs as usize);
                let mut first_run_ms = 0.0;
                for run in 0..warmup.max(1) + runs {
                    let started = now_ms();
                    detector.run_raw_async(input.data.clone()).await.map_err(|e| e.0)?;
                    let ms = now_ms() - started;
                    if run == 0 {
                        first_run_ms = ms;
                    } else if run >= warmup.max(1) {
                        times_ms.push(ms);
                    }
                }
                let operators = detector.profile_async(input.data, now_ms).await.map_err(|e| e.0)?;
                let gpu_work = detector.gpu_model().map(|model| GpuWork {
                    dispatches: model.stats().dispatches as u32,
                    submissions: model.stats().submissions as u32,
                });
                Ok(FromWorker::Bench {
                    id,
                    load_ms,
                    first_run_ms,
                    times_ms,
                    operators,
                    engine,
                    gpu_work,
                })
            }
        }
    }

    /// The detector for `url` on `choice`: kept in memory, else from Cache Storage, else
    /// downloaded (and put in the cache).
    async fn model(&mut self, url: &str, choice: EngineChoice) -> Result<(Rc<Detector>, Engine, ModelSource), String> {
        if let Some(loaded) = &self.loaded
            && loaded.url == url
            && loaded.choice == choice
        {
            return Ok((loaded.detector.clone(), loaded.engine.clone(), ModelSource::Memory));
        }
        // One model at a time: the old one's GPU buffers go before the new one's are made.
        self.loaded = None;
        let (bytes, source) = cached_fetch(url).await?;
        let (detector, engine) =
            (self.engines.load(&bytes, choice, None).await).map_err(|e| format!("the model cannot run here: {e}"))?;
        let detector = Rc::new(detector);
        self.loaded = Some(Loaded {
            url: url.to_owned(),
            choice,
            detector: detector.clone(),
            engine: engine.clone(),
        });
        Ok((detector, engine, source))
    }
}

/// RGBA pixels of a decoded, upright image.
struct Rgba {
    data: Vec<u8>,
    width: u32,
    height: u32,
}

/// Decodes an image with the browser's own decoder (EXIF orientation applied, as the editor
/// shows it) and reads its pixels through an OffscreenCanvas.
async fn decode_image(url: &str) -> Result<Rgba, String> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let response = fetch(url).await?;
    let blob: web_sys::Blob = await_js(response.blob().map_err(js_error)?).await?.unchecked_into();
    let bitmap: web_sys::ImageBitmap = await_js(scope.create_image_bitmap_with_blob(&blob).map_err(js_error)?)
        .await?
        .unchecked_into();
    let (width, height) = (bitmap.width(), bitmap.height());
    let canvas = web_sys::OffscreenCanvas::new(width, height).map_err(js_error)?;
    let context: OffscreenCanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(js_error)?
        .ok_or("no 2D canvas in this worker")?
        .unchecked_into();
    context
        .draw_image_with_image_bitmap(&bitmap, 0.0, 0.0)
        .map_err(js_error)?;
    bitmap.close();
    let data = context
        .get_image_data(0.0, 0.0, f64::from(width), f64::from(height))
        .map_err(js_error)?;
    Ok(Rgba {
        data: data.data().0,
        width,
        height,
    })
}

async fn cached_fetch(url: &str) -> Result<(Vec<u8>, ModelSource), String> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    // Cache Storage needs a secure context (https or localhost); elsewhere, just download.
    let cache: Option<web_sys::Cache> = match scope.caches() {
        Ok(caches) => await_js(caches.open(MODEL_CACHE))
            .await
            .ok()
            .map(JsCast::unchecked_into),
        Err(_) => None,
    };
    if let Some(cache) = &cache {
        let hit = await_js(cache.match_with_str(url)).await?;
        if let Ok(response) = hit.dyn_into::<Response>() {
            return Ok((response_bytes(&response).await?, ModelSource::Cache));
        }
    }
    let response = fetch(url).await?;
    if let Some(cache) = &cache {
        let copy = response.clone().map_err(js_error)?;
        // A full cache only costs the next reload a download.
        let _ = await_js(cache.put_with_str(url, &copy)).await;
    }
    Ok((response_bytes(&response).await?, ModelSource::Network))
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    response_bytes(&fetch(url).await?).await
}

async fn fetch(url: &str) -> Result<Response, String> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let response: Response = await_js(scope.fetch_with_str(url)).await?.unchecked_into();
    if !response.ok() {
        return Err(format!(
            "{url} answered {} {}",
            response.status(),
            response.status_text()
        ));
    }
    Ok(response)
}

async fn response_bytes(response: &Response) -> Result<Vec<u8>, String> {
    let buffer = await_js(response.array_buffer().map_err(js_error)?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

async fn await_js(promise: Promise) -> Result<JsValue, String> {
    JsFuture::from(promise).await.map_err(js_error)
}

fn js_error(value: JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

fn now_ms() -> f64 {
    thread_local! {
        static PERFORMANCE: Option<web_sys::Performance> =
            js_sys::global().unchecked_into::<web_sys::WorkerGlobalScope>().performance();
    }
    PERFORMANCE.with(|p| p.as_ref().map_or(0.0, web_sys::Performance::now))
}
