//! Typed calls to the server's `/api`. Every failure becomes a readable message: the server's
//! `{error:{message}}` when it sent one, otherwise what went wrong on the way.

use api::{ErrorBody, NewProject, Project, ProjectPatch};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;

/// A failed call, ready to show to a person.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiFailure {
    /// The server's error code, or `network` when the server could not be reached.
    pub code: String,
    /// Readable message.
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

type ApiResult<T> = Result<T, ApiFailure>;

fn network(error: impl std::fmt::Display) -> ApiFailure {
    ApiFailure {
        code: "network".into(),
        message: format!("Cannot reach the server ({error})."),
    }
}

/// A write (POST, PUT, PATCH, DELETE) with the session's anti-forgery token, which the server
/// requires on every cookie-authenticated change.
fn writing(request: RequestBuilder) -> RequestBuilder {
    match crate::session::csrf_token() {
        Some(token) => request.header(CSRF_HEADER, &token),
        None => request,
    }
}

/// A write with a JSON body, answered with JSON.
async fn send_json<B: serde::Serialize, T: DeserializeOwned>(request: RequestBuilder, body: &B) -> ApiResult<T> {
    let request = writing(request).json(body).map_err(network)?;
    decode(request.send().await.map_err(network)?).await
}

/// A write without a body (a deletion, an action).
async fn send_empty(request: RequestBuilder) -> ApiResult<Response> {
    writing(request).send().await.map_err(network)
}

/// The header [`writing`] sets (the server's `access::CSRF_HEADER`).
pub const CSRF_HEADER: &str = "x-csrf-token";

async fn decode<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
    if response.status() == 401 {
        // The session ended: the sign-in form opens over the page, which keeps its state.
        crate::session::ended();
    }
    if response.ok() {
        return response.json::<T>().await.map_err(|e| ApiFailure {
            code: "bad_response".into(),
            message: format!("The server sent an answer this page cannot read ({e})."),
        });
    }
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => Err(ApiFailure {
            code: body.error.code,
            message: body.error.message,
        }),
        Err(_) => Err(ApiFailure {
            code: format!("http_{status}"),
            message: format!("The server answered {status} {}.", response.status_text()),
        }),
    }
}

/// `GET url`, decoded.
async fn get_json<T: DeserializeOwned>(url: &str) -> ApiResult<T> {
    decode(Request::get(url).send().await.map_err(network)?).await
}

/// `GET /api/projects`.
pub async fn list_projects() -> ApiResult<Vec<Project>> {
    get_json("/api/projects").await
}

/// `GET /api/projects/{pid}`.
pub async fn get_project(project_id: i64) -> ApiResult<Project> {
    get_json(&format!("/api/projects/{project_id}")).await
}

/// `POST /api/projects`.
pub async fn create_project(body: &NewProject) -> ApiResult<Project> {
    send_json(Request::post("/api/projects"), body).await
}

/// `PATCH /api/projects/{pid}`.
pub async fn update_project(project_id: i64, patch: &ProjectPatch) -> ApiResult<Project> {
    send_json(Request::patch(&format!("/api/projects/{project_id}")), patch).await
}

/// `GET /api/projects/{pid}/images` with the gallery's filters; `before` pages backwards.
pub async fn list_images(
    project_id: i64,
    status: Option<api::ImageStatus>,
    class_id: Option<u32>,
    source: Option<api::BoxSource>,
    cursor: Option<i64>,
    before: Option<i64>,
    limit: u32,
) -> ApiResult<api::ImagePage> {
    let mut url = format!("/api/projects/{project_id}/images?limit={limit}");
    if let Some(status) = status {
        url.push_str(&format!("&status={}", status.as_str()));
    }
    if let Some(class_id) = class_id {
        url.push_str(&format!("&class_id={class_id}"));
    }
    if let Some(source) = source {
        url.push_str(&format!("&source={}", source.as_str()));
    }
    if let Some(cursor) = cursor {
        url.push_str(&format!("&cursor={cursor}"));
    }
    if let Some(before) = before {
        url.push_str(&format!("&before={before}"));
    }
    get_json(&url).await
}

/// `GET /api/images/{iid}`.
pub async fn get_image(image_id: i64) -> ApiResult<api::ImageInfo> {
    get_json(&format!("/api/images/{image_id}")).await
}

/// `GET /api/images/{iid}/boxes`.
pub async fn get_boxes(image_id: i64) -> ApiResult<api::ImageBoxes> {
    get_json(&format!("/api/images/{image_id}/boxes")).await
}

/// `GET /api/projects/{pid}/next?mode=…&strategy=…&after=…`: the next image for this person that
/// nobody else holds.
pub async fn next_image(
    project_id: i64,
    reviewing: bool,
    strategy: api::Strategy,
    after: Option<i64>,
) -> ApiResult<api::NextImage> {
    let mode = if reviewing { "review" } else { "label" };
    let after = after.map(|id| format!("&after={id}")).unwrap_or_default();
    get_json(&format!(
        "/api/projects/{project_id}/next?mode={mode}&strategy={}{after}",
        strategy.as_str()
    ))
    .await
}

/// `GET /api/images/{iid}/history?before=…`: the image's audit log, newest first.
pub async fn image_history(image_id: i64, before: Option<i64>) -> ApiResult<api::ImageHistory> {
    let before = before.map(|seq| format!("?before={seq}")).unwrap_or_default();
    get_json(&format!("/api/images/{image_id}/history{before}")).await
}

/// `POST /api/images/{iid}/ops`.
pub async fn apply_ops(image_id: i64, request: &api::OpsRequest) -> ApiResult<api::OpsResponse> {
    send_json(Request::post(&format!("/api/images/{image_id}/ops")), request).await
}

/// `POST /api/images/{iid}/status`.
pub async fn change_status(image_id: i64, change: &api::StatusChange) -> ApiResult<api::ImageInfo> {
    send_json(Request::post(&format!("/api/images/{image_id}/status")), change).await
}

/// `GET /api/projects/{pid}/export?…&dry_run=true`.
pub async fn export_counts(project_id: i64, query: &str) -> ApiResult<api::ExportCounts> {
    let url = format!("/api/projects/{project_id}/export?{query}&dry_run=true");
    get_json(&url).await
}

/// `POST /api/projects/{pid}/import` with a zip.
pub async fn import_dataset(project_id: i64, file: &web_sys::File) -> ApiResult<api::ImportReport> {
    let form = web_sys::FormData::new().map_err(|e| network(format!("{e:?}")))?;
    form.append_with_blob_and_filename("file", file, &file.name())
        .map_err(|e| network(format!("{e:?}")))?;
    let request = writing(Request::post(&format!("/api/projects/{project_id}/import")))
        .body(form)
        .map_err(network)?;
    decode(request.send().await.map_err(network)?).await
}

/// `GET /api/projects/{pid}/models`, newest first.
pub async fn list_models(project_id: i64) -> ApiResult<Vec<api::RegisteredModel>> {
    get_json(&format!("/api/projects/{project_id}/models")).await
}

/// `POST /api/projects/{pid}/models` with an ONNX file and its role.
pub async fn upload_model(
    project_id: i64,
    file: &web_sys::File,
    role: api::ModelRole,
) -> ApiResult<api::RegisteredModel> {
    let form = web_sys::FormData::new().map_err(|e| network(format!("{e:?}")))?;
    form.append_with_str("role", role.as_str())
        .map_err(|e| network(format!("{e:?}")))?;
    form.append_with_blob_and_filename("file", file, &file.name())
        .map_err(|e| network(format!("{e:?}")))?;
    let request = writing(Request::post(&format!("/api/projects/{project_id}/models")))
        .body(form)
        .map_err(network)?;
    decode(request.send().await.map_err(network)?).await
}

/// `PATCH /api/models/{mid}`.
pub async fn update_model(model_id: i64, patch: &api::ModelPatch) -> ApiResult<api::RegisteredModel> {
    send_json(Request::patch(&format!("/api/models/{model_id}")), patch).await
}

/// `GET /api/projects/{pid}/queue?strategy=…&limit=…`.
pub async fn queue(project_id: i64, strategy: api::Strategy, limit: u32) -> ApiResult<api::Queue> {
    get_json(&format!(
        "/api/projects/{project_id}/queue?strategy={}&limit={limit}",
        strategy.as_str()
    ))
    .await
}

/// `GET /api/projects/{pid}/predictions/pending?model_id=…`.
pub async fn pending_predictions(project_id: i64, model_id: i64, limit: u32) -> ApiResult<api::PendingImages> {
    get_json(&format!(
        "/api/projects/{project_id}/predictions/pending?model_id={model_id}&limit={limit}"
    ))
    .await
}

/// `POST /api/projects/{pid}/predictions`.
pub async fn report_predictions(project_id: i64, report: &api::PredictionReport) -> ApiResult<()> {
    let request = writing(Request::post(&format!("/api/projects/{project_id}/predictions")))
        .json(report)
        .map_err(network)?;
    let response = request.send().await.map_err(network)?;
    if response.ok() {
        Ok(())
    } else {
        decode::<()>(response).await
    }
}

/// `GET /api/projects/{pid}/evaluation[?split=]`.
pub async fn evaluation(project_id: i64, split: Option<api::Split>) -> ApiResult<api::ProjectEvaluation> {
    let query = split.map(|s| format!("?split={}", s.as_str())).unwrap_or_default();
    get_json(&format!("/api/projects/{project_id}/evaluation{query}")).await
}

/// `GET /api/images/{iid}/label-errors`.
pub async fn label_errors(image_id: i64) -> ApiResult<api::ImageLabelErrors> {
    get_json(&format!("/api/images/{image_id}/label-errors")).await
}

/// `POST /api/images/{iid}/label-errors/confirm`.
pub async fn confirm_label(image_id: i64, body: &api::ConfirmLabel) -> ApiResult<api::ImageLabelErrors> {
    send_json(
        Request::post(&format!("/api/images/{image_id}/label-errors/confirm")),
        body,
    )
    .await
}

/// `POST /api/projects/{pid}/jobs`.
pub async fn create_job(project_id: i64, job: &api::NewJob) -> ApiResult<api::Job> {
    send_json(Request::post(&format!("/api/projects/{project_id}/jobs")), job).await
}

/// Follows a job through `GET /api/jobs/{jid}/events` (Server-Sent Events) until it ends:
/// `on_change` sees every state the server pushes, the final one is returned. The browser
/// reconnects a dropped stream by itself; only a stream it gave up on is a failure.
pub async fn follow_job(job_id: i64, on_change: impl Fn(api::Job)) -> ApiResult<api::Job> {
    use futures_util::StreamExt;
    use gloo_net::eventsource::{State, futures::EventSource};
    let mut source = EventSource::new(&format!("/api/jobs/{job_id}/events")).map_err(network)?;
    let mut events = source.subscribe("job").map_err(network)?;
    while let Some(event) = events.next().await {
        match event {
            Ok((_, message)) => {
                let job: api::Job = message
                    .data()
                    .as_string()
                    .and_then(|data| serde_json::from_str(&data).ok())
                    .ok_or_else(|| ApiFailure {
                        code: "bad_event".into(),
                        message: "The server sent a job update this page cannot read.".into(),
                    })?;
                if job.state.is_final() {
                    source.close();
                    return Ok(job);
                }
                on_change(job);
            }
            Err(_) if source.state() == State::Closed => break,
            Err(_) => {} // reconnecting
        }
    }
    Err(network("the job's progress stream closed"))
}

/// Follows `GET /api/projects/{pid}/events` (Server-Sent Events) for as long as the returned
/// future is polled: `on_event` sees every event, the first of each (re)connection being the
/// state as it is then, so nothing missed while offline stays missed. The browser reconnects a
/// dropped stream by itself; one it gives up on is opened again after a pause.
pub async fn follow_project(project_id: i64, on_event: impl Fn(api::ProjectEvent)) {
    use futures_util::StreamExt;
    use gloo_net::eventsource::{State, futures::EventSource};
    loop {
        if let Ok(mut source) = EventSource::new(&format!("/api/projects/{project_id}/events"))
            && let Ok(mut events) = source.subscribe("active_student")
        {
            while let Some(event) = events.next().await {
                match event {
                    Ok((_, message)) => {
                        if let Some(event) = message.data().as_string().and_then(|d| serde_json::from_str(&d).ok()) {
                            on_event(event);
                        }
                    }
                    Err(_) if source.state() == State::Closed => break,
                    Err(_) => {} // reconnecting
                }
            }
        }
        gloo_timers::future::sleep(std::time::Duration::from_secs(10)).await;
    }
}

/// `follow_project` for as long as the calling component is mounted: the stream closes when it
/// is cleaned up.
pub fn follow_project_while_mounted(project_id: i64, on_event: impl Fn(api::ProjectEvent) + 'static) {
    let (closed, on_close) = futures_channel::oneshot::channel::<()>();
    leptos::task::spawn_local(async move {
        futures_util::future::select(Box::pin(follow_project(project_id, on_event)), on_close).await;
    });
    leptos::prelude::on_cleanup(move || {
        let _ = closed.send(());
    });
}

/// `PUT /api/projects/{pid}/active-student`: the student browsers run from now on.
pub async fn set_active_student(project_id: i64, model_id: i64) -> ApiResult<api::RegisteredModel> {
    send_json(
        Request::put(&format!("/api/projects/{project_id}/active-student")),
        &api::ActiveStudent { model_id },
    )
    .await
}

/// `GET /api/projects/{pid}/jobs`: the project's latest jobs, newest first.
pub async fn list_jobs(project_id: i64) -> ApiResult<Vec<api::Job>> {
    get_json(&format!("/api/projects/{project_id}/jobs")).await
}

/// `GET /api/jobs/{jid}/epochs`: a training job's finished epochs.
pub async fn training_epochs(job_id: i64) -> ApiResult<Vec<api::TrainingEpoch>> {
    get_json(&format!("/api/jobs/{job_id}/epochs")).await
}

/// `POST /api/jobs/{jid}/cancel`.
pub async fn cancel_job(job_id: i64) -> ApiResult<api::Job> {
    job_action(job_id, "cancel").await
}

/// `POST /api/jobs/{jid}/resume`: queues a cancelled or failed job again; a training continues
/// from its last checkpoint.
pub async fn resume_job(job_id: i64) -> ApiResult<api::Job> {
    job_action(job_id, "resume").await
}

/// `POST /api/jobs/{jid}/{action}` with no body: the job as it is afterwards.
async fn job_action(job_id: i64, action: &str) -> ApiResult<api::Job> {
    decode(send_empty(Request::post(&format!("/api/jobs/{job_id}/{action}"))).await?).await
}

impl ApiFailure {
    /// True when the server no longer knows the caller (the session ended): the request is
    /// worth sending again once the person has signed in.
    pub fn is_signed_out(&self) -> bool {
        self.code == "unauthenticated"
    }

    /// True when the anti-forgery token was refused (a stale one from before a new sign-in).
    pub fn is_stale_token(&self) -> bool {
        self.code == "csrf_failed"
    }

    /// True when the request never got an answer (offline, server down) or the server failed:
    /// worth retrying. A 4xx answer is final.
    pub fn is_retryable(&self) -> bool {
        self.code == "network" || self.code == "internal" || self.code.starts_with("http_5")
    }
}

/// `GET /api/session`: who is signed in (401 when nobody).
pub async fn current_session() -> ApiResult<api::Session> {
    // Not through `decode`'s 401 handling: nobody being signed in at start is not an ending.
    let response = Request::get("/api/session").send().await.map_err(network)?;
    if response.status() == 401 {
        return Err(ApiFailure {
            code: "unauthenticated".into(),
            message: "Nobody is signed in.".into(),
        });
    }
    decode(response).await
}

/// `GET /api/setup`: whether the studio still needs its first admin.
pub async fn setup_state() -> ApiResult<api::SetupState> {
    get_json("/api/setup").await
}

/// `POST /api/setup`: creates the first admin and signs them in.
pub async fn setup(credentials: &api::Credentials) -> ApiResult<api::Session> {
    let request = Request::post("/api/setup").json(credentials).map_err(network)?;
    sign_in_answer(request.send().await.map_err(network)?).await
}

/// `POST /api/login`.
pub async fn login(credentials: &api::Credentials) -> ApiResult<api::Session> {
    let request = Request::post("/api/login").json(credentials).map_err(network)?;
    sign_in_answer(request.send().await.map_err(network)?).await
}

/// A sign-in's answer: a wrong password is a 401 too, which ends nothing.
async fn sign_in_answer(response: Response) -> ApiResult<api::Session> {
    if response.ok() {
        return decode(response).await;
    }
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => Err(ApiFailure {
            code: body.error.code,
            message: body.error.message,
        }),
        Err(_) => Err(ApiFailure {
            code: format!("http_{status}"),
            message: format!("The server answered {status}."),
        }),
    }
}

/// `POST /api/logout`.
pub async fn logout() -> ApiResult<()> {
    no_content(send_empty(Request::post("/api/logout")).await?).await
}

/// An answer without a body (204), or the failure.
async fn no_content(response: Response) -> ApiResult<()> {
    if response.ok() {
        return Ok(());
    }
    decode::<serde_json::Value>(response).await.map(drop)
}

/// `POST /api/me/password`.
pub async fn change_password(change: &api::PasswordChange) -> ApiResult<()> {
    let request = writing(Request::post("/api/me/password"))
        .json(change)
        .map_err(network)?;
    no_content(request.send().await.map_err(network)?).await
}

/// `GET /api/tokens`: the caller's API tokens.
pub async fn list_tokens() -> ApiResult<Vec<api::ApiToken>> {
    get_json("/api/tokens").await
}

/// `POST /api/tokens`: a new token, its secret shown this once.
pub async fn create_token(name: &str) -> ApiResult<api::CreatedToken> {
    let body = api::NewToken { name: name.to_owned() };
    send_json(Request::post("/api/tokens"), &body).await
}

/// `DELETE /api/tokens/{tid}`.
pub async fn revoke_token(token_id: i64) -> ApiResult<()> {
    let response = send_empty(Request::delete(&format!("/api/tokens/{token_id}"))).await?;
    no_content(response).await
}

/// `GET /api/users` (admin).
pub async fn list_users() -> ApiResult<Vec<api::User>> {
    get_json("/api/users").await
}

/// `POST /api/users` (admin).
pub async fn add_user(user: &api::NewUser) -> ApiResult<api::User> {
    send_json(Request::post("/api/users"), user).await
}

/// `GET /api/projects/{pid}/contributions`: each person's counts.
pub async fn contributions(project_id: i64) -> ApiResult<Vec<api::Contribution>> {
    get_json(&format!("/api/projects/{project_id}/contributions")).await
}

/// `POST /api/projects/{pid}/assignments` (owner): assigns images to a member, or takes theirs back.
pub async fn assign_images(project_id: i64, assignment: &api::NewAssignment) -> ApiResult<api::Assignment> {
    send_json(
        Request::post(&format!("/api/projects/{project_id}/assignments")),
        assignment,
    )
    .await
}

/// `GET /api/projects/{pid}/members`.
pub async fn list_members(project_id: i64) -> ApiResult<Vec<api::Member>> {
    get_json(&format!("/api/projects/{project_id}/members")).await
}

/// `POST /api/projects/{pid}/members` (owner): adds someone or changes their role.
pub async fn put_member(project_id: i64, member: &api::NewMember) -> ApiResult<Vec<api::Member>> {
    send_json(Request::post(&format!("/api/projects/{project_id}/members")), member).await
}

/// `GET /api/projects/{pid}/invites` (owner): the links still valid.
pub async fn list_invites(project_id: i64) -> ApiResult<Vec<api::Invite>> {
    get_json(&format!("/api/projects/{project_id}/invites")).await
}

/// `POST /api/projects/{pid}/invites` (owner).
pub async fn create_invite(project_id: i64, invite: &api::NewInvite) -> ApiResult<api::CreatedInvite> {
    send_json(Request::post(&format!("/api/projects/{project_id}/invites")), invite).await
}

/// `DELETE /api/projects/{pid}/invites/{vid}` (owner).
pub async fn revoke_invite(project_id: i64, invite_id: i64) -> ApiResult<()> {
    let response = send_empty(Request::delete(&format!(
        "/api/projects/{project_id}/invites/{invite_id}"
    )))
    .await?;
    no_content(response).await
}

/// `GET /api/invites/{secret}`: what an invite link offers.
pub async fn invite_offer(secret: &str) -> ApiResult<api::InviteOffer> {
    get_json(&format!("/api/invites/{secret}")).await
}

/// `POST /api/invites/{secret}/accept`.
pub async fn accept_invite(secret: &str, accept: &api::AcceptInvite) -> ApiResult<api::JoinedProject> {
    send_json(Request::post(&format!("/api/invites/{secret}/accept")), accept).await
}

/// `DELETE /api/projects/{pid}/members/{uid}` (owner).
pub async fn remove_member(project_id: i64, user_id: i64) -> ApiResult<Vec<api::Member>> {
    let response = send_empty(Request::delete(&format!(
        "/api/projects/{project_id}/members/{user_id}"
    )))
    .await?;
    decode(response).await
}

/// Follows the project's live channel (`GET /api/projects/{pid}/live`, a WebSocket) from
/// `since`, saying that `image_id` is on screen, for as long as the returned future is polled:
/// `on_event` sees every change in sequence order, each once; what arrives on `requests` is sent.
/// A dropped connection — the network, a server restart, or the server closing a client that
/// fell behind — is opened again from the last sequence number seen, so nothing is missed.
pub async fn follow_live(
    project_id: i64,
    image_id: i64,
    since: i64,
    mut requests: futures_channel::mpsc::UnboundedReceiver<api::LiveRequest>,
    on_event: impl Fn(api::LiveEvent),
) {
    use futures_util::{SinkExt, StreamExt};
    use gloo_net::websocket::Message;
    use gloo_net::websocket::futures::WebSocket;
    let mut last = since;
    let mut pause_ms = 500u32;
    loop {
        let url = live_url(project_id, image_id, last);
        if let Some(Ok(socket)) = url.map(|url| WebSocket::open(&url)) {
            let (mut out, mut incoming) = socket.split();
            loop {
                let next = futures_util::future::select(incoming.next(), requests.next()).await;
                match next {
                    futures_util::future::Either::Left((Some(Ok(Message::Text(text))), _)) => {
                        let Ok(event) = serde_json::from_str::<api::LiveEvent>(&text) else {
                            continue;
                        };
                        if let Some(seq) = event.seq() {
                            if seq <= last {
                                continue;
                            }
                            last = seq;
                        }
                        pause_ms = 500;
                        on_event(event);
                    }
                    futures_util::future::Either::Left((Some(Ok(_)), _)) => {}
                    futures_util::future::Either::Left((None | Some(Err(_)), _)) => break,
                    futures_util::future::Either::Right((Some(request), _)) => {
                        if let Ok(text) = serde_json::to_string(&request) {
                            let _ = out.send(Message::Text(text)).await;
                        }
                    }
                    // Nobody can send any more: the editor is gone.
                    futures_util::future::Either::Right((None, _)) => return,
                }
            }
        }
        gloo_timers::future::TimeoutFuture::new(pause_ms).await;
        pause_ms = (pause_ms * 2).min(10_000);
    }
}

/// `ws://` or `wss://` (as the page came) to the live channel.
fn live_url(project_id: i64, image_id: i64, since: i64) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    let host = location.host().ok()?;
    Some(format!(
        "{scheme}://{host}/api/projects/{project_id}/live?since={since}&image_id={image_id}"
    ))
}

/// [`follow_live`] for as long as the calling component is mounted; returns where to send
/// requests.
pub fn follow_live_while_mounted(
    project_id: i64,
    image_id: i64,
    since: i64,
    on_event: impl Fn(api::LiveEvent) + 'static,
) -> futures_channel::mpsc::UnboundedSender<api::LiveRequest> {
    let (requests, incoming) = futures_channel::mpsc::unbounded();
    let (closed, on_close) = futures_channel::oneshot::channel::<()>();
    leptos::task::spawn_local(async move {
        futures_util::future::select(
            Box::pin(follow_live(project_id, image_id, since, incoming, on_event)),
            on_close,
        )
        .await;
    });
    leptos::prelude::on_cleanup(move || {
        let _ = closed.send(());
    });
    requests
}
