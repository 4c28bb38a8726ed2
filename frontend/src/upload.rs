//! Uploading files with per-file progress. `fetch` cannot report upload progress, so each file
//! goes up in its own `XMLHttpRequest` (the browser streams it from disk).

use api::{ErrorBody, UploadedFile};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{File, FormData, ProgressEvent, XmlHttpRequest};

/// Where one file's upload stands.
#[derive(Debug, Clone, PartialEq)]
pub enum UploadState {
    /// Waiting for its turn.
    Queued,
    /// Bytes sent so far, as a fraction.
    Sending(f64),
    /// Stored (or found to be a duplicate).
    Done(UploadedFile),
    /// Refused, with the reason.
    Failed(String),
}

/// One row of the upload list.
#[derive(Debug, Clone)]
pub struct UploadItem {
    /// Unique within the page (the list's key).
    pub id: u64,
    /// The file's name.
    pub name: String,
    /// Its state, updated as the upload goes.
    pub state: RwSignal<UploadState>,
}

/// Uploads `file` to the project; resolves when the server has answered.
pub async fn upload_file(project_id: i64, file: File, state: RwSignal<UploadState>) {
    let (sender, receiver) = futures_channel::oneshot::channel::<UploadState>();
    // The request's handlers live until its answer has arrived, then are dropped here.
    let _handlers = match start(project_id, &file, state, sender) {
        Ok(handlers) => handlers,
        Err(message) => {
            state.set(UploadState::Failed(message));
            return;
        }
    };
    let outcome = receiver
        .await
        .unwrap_or_else(|_| UploadState::Failed("The upload was cancelled.".into()));
    state.set(outcome);
}

/// Keeps an upload's event handlers alive while it runs.
struct Handlers {
    _progress: Closure<dyn FnMut(ProgressEvent)>,
    _done: Closure<dyn FnMut()>,
}

fn start(
    project_id: i64,
    file: &File,
    state: RwSignal<UploadState>,
    sender: futures_channel::oneshot::Sender<UploadState>,
) -> Result<Handlers, String> {
    let js = |e: wasm_bindgen::JsValue| format!("{e:?}");
    let request = XmlHttpRequest::new().map_err(js)?;
    request
        .open("POST", &format!("/api/projects/{project_id}/images"))
        .map_err(js)?;
    if let Some(token) = crate::session::csrf_token() {
        request
            .set_request_header(crate::api_client::CSRF_HEADER, &token)
            .map_err(js)?;
    }
    let form = FormData::new().map_err(js)?;
    form.append_with_blob_and_filename("file", file, &file.name())
        .map_err(js)?;

    let on_progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |event: ProgressEvent| {
        if event.length_computable() && event.total() > 0.0 {
            state.set(UploadState::Sending(event.loaded() / event.total()));
        }
    });
    request
        .upload()
        .map_err(js)?
        .set_onprogress(Some(on_progress.as_ref().unchecked_ref()));

    let finished = request.clone();
    let mut sender = Some(sender);
    let name = file.name();
    let on_done = Closure::<dyn FnMut()>::new(move || {
        let status = finished.status().unwrap_or(0);
        let body = finished.response_text().ok().flatten().unwrap_or_default();
        if status == 401 {
            crate::session::ended();
        }
        let outcome = if status == 0 {
            UploadState::Failed("The server could not be reached.".into())
        } else if (200..300).contains(&status) {
            match serde_json::from_str::<Vec<UploadedFile>>(&body)
                .ok()
                .and_then(|mut list| list.pop())
            {
                Some(file) => match &file.error {
                    Some(error) => UploadState::Failed(error.message.clone()),
                    None => UploadState::Done(file),
                },
                None => UploadState::Failed("The server's answer could not be read.".into()),
            }
        } else {
            let message = serde_json::from_str::<ErrorBody>(&body)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| format!("{name}: the server answered {status}."));
            UploadState::Failed(message)
        };
        if let Some(sender) = sender.take() {
            let _ = sender.send(outcome);
        }
    });
    request.set_onloadend(Some(on_done.as_ref().unchecked_ref()));
    state.set(UploadState::Sending(0.0));
    request.send_with_opt_form_data(Some(&form)).map_err(js)?;
    Ok(Handlers {
        _progress: on_progress,
        _done: on_done,
    })
}
