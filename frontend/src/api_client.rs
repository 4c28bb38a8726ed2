//! Typed calls to the server's `/api`. Every failure becomes a readable message: the server's
//! `{error:{message}}` when it sent one, otherwise what went wrong on the way.

use api::{ErrorBody, NewProject, Project, ProjectPatch};
use gloo_net::http::{Request, Response};
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

async fn decode<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
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

/// `GET /api/projects`.
pub async fn list_projects() -> ApiResult<Vec<Project>> {
    decode(
        Request::get("/api/projects")
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `GET /api/projects/{pid}`.
pub async fn get_project(project_id: i64) -> ApiResult<Project> {
    decode(
        Request::get(&format!("/api/projects/{project_id}"))
            .send()
            .await
            .map_err(network)?,
    )
    .await
}

/// `POST /api/projects`.
pub async fn create_project(body: &NewProject) -> ApiResult<Project> {
    let request = Request::post("/api/projects").json(body).map_err(network)?;
    decode(request.send().await.map_err(network)?).await
}

/// `PATCH /api/projects/{pid}`.
pub async fn update_project(project_id: i64, patch: &ProjectPatch) -> ApiResult<Project> {
    let request = Request::patch(&format!("/api/projects/{project_id}"))
        .json(patch)
        .map_err(network)?;
    decode(request.send().await.map_err(network)?).await
}
