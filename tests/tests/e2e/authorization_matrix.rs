//! Every route × every kind of caller, with the status each must get. The routes are read from the
//! server's sources (`e2e::routes`), so a new route fails this test until the table below says
//! who may call it; the table is this test's own, written from DESIGN's roles, not taken from the
//! server's `access` module.
//!
//! Callers: the project's owner, reviewer, annotator and viewer; the owner of *another* project
//! (who must not learn that this project's ids exist: 404, never 403 — CVAT CVE-2024-47172,
//! Label Studio #9796); no credentials; a revoked token; and the admin. Requests that a caller
//! may make carry bodies the server refuses as malformed, so the matrix changes nothing it
//! reads.

use anyhow::{Context, ensure};
use api::Role;
use e2e::routes::Route;
use e2e::{Studio, fixtures};
use reqwest::{Method, StatusCode};

/// What a route needs, per DESIGN's roles.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    /// Anyone, signed in or not.
    Public,
    /// Any account.
    SignedIn,
    /// An admin.
    Admin,
    /// At least this role in the project the route's id belongs to.
    Project(Role),
}

/// The matrix's expectations, one line per route; `None` for a route nobody has classified yet.
fn needs(method: &Method, path: &str) -> Option<Needs> {
    use Needs::*;
    use Role::*;
    let viewer_reads = [
        "/projects/{pid}",
        "/projects/{pid}/images",
        "/projects/{pid}/models",
        "/projects/{pid}/jobs",
        "/projects/{pid}/events",
        "/projects/{pid}/live",
        "/projects/{pid}/export",
        "/projects/{pid}/queue",
        "/projects/{pid}/predictions/pending",
        "/projects/{pid}/evaluation",
        "/projects/{pid}/members",
        "/projects/{pid}/contributions",
        "/images/{iid}",
        "/images/{iid}/file",
        "/images/{iid}/thumb",
        "/images/{iid}/boxes",
        "/images/{iid}/history",
        "/images/{iid}/prediction",
        "/images/{iid}/label-errors",
        "/models/{mid}",
        "/models/{mid}/file",
        "/model-files/{name}",
        "/jobs/{jid}",
        "/jobs/{jid}/events",
        "/jobs/{jid}/epochs",
    ];
    Some(match (method.as_str(), path) {
        ("GET", "/health" | "/invites/{secret}")
        | ("GET" | "POST", "/setup")
        | ("POST", "/login" | "/invites/{secret}/accept") => Public,
        ("GET", "/session") | ("POST", "/logout" | "/me/password") | ("GET" | "POST", "/projects") => SignedIn,
        ("GET" | "POST", "/tokens") | ("DELETE", "/tokens/{tid}") => SignedIn,
        ("GET" | "POST", "/users") => Admin,
        ("GET", p) if viewer_reads.contains(&p) => Project(Viewer),
        ("GET", "/projects/{pid}/next")
        | ("POST", "/images/{iid}/ops" | "/images/{iid}/status" | "/images/{iid}/label-errors/confirm")
        | ("PUT", "/images/{iid}/boxes")
        | ("POST", "/projects/{pid}/predictions") => Project(Annotator),
        ("PATCH", "/projects/{pid}" | "/models/{mid}")
        | ("PUT", "/projects/{pid}/active-student")
        | ("DELETE", "/projects/{pid}/members/{uid}" | "/projects/{pid}/invites/{vid}")
        | ("GET", "/projects/{pid}/invites")
        | (
            "POST",
            "/projects/{pid}/images"
            | "/projects/{pid}/import"
            | "/projects/{pid}/models"
            | "/projects/{pid}/jobs"
            | "/projects/{pid}/members"
            | "/projects/{pid}/invites"
            | "/projects/{pid}/assignments"
            | "/jobs/{jid}/cancel"
            | "/jobs/{jid}/resume",
        ) => Project(Owner),
        _ => return None,
    })
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Member(Role),
    Outsider,
    Anonymous,
    RevokedToken,
    Admin,
}

/// The status class a caller must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Past the access check: anything but 401, 403 and an access 404.
    Allowed,
    Unauthenticated,
    Forbidden,
    /// As if the id did not exist.
    Hidden,
}

fn expected(caller: Caller, needs: Needs) -> Outcome {
    match (caller, needs) {
        (_, Needs::Public) => Outcome::Allowed,
        (Caller::Anonymous | Caller::RevokedToken, _) => Outcome::Unauthenticated,
        (Caller::Admin, _) | (_, Needs::SignedIn) => Outcome::Allowed,
        (_, Needs::Admin) => Outcome::Forbidden,
        (Caller::Outsider, Needs::Project(_)) => Outcome::Hidden,
        (Caller::Member(role), Needs::Project(needed)) if role >= needed => Outcome::Allowed,
        (Caller::Member(_), Needs::Project(_)) => Outcome::Forbidden,
    }
}

/// The ids the path's parameters name, all in the project under test.
struct Ids {
    pid: i64,
    iid: i64,
    mid: i64,
    jid: i64,
    sha: String,
    /// A member the owner may remove.
    uid: i64,
    /// A token of the owner's.
    tid: i64,
    /// Another invite link's secret.
    secret: String,
}

impl Ids {
    fn fill(&self, path: &str) -> String {
        path.replace("{pid}", &self.pid.to_string())
            .replace("{iid}", &self.iid.to_string())
            .replace("{mid}", &self.mid.to_string())
            .replace("{jid}", &self.jid.to_string())
            .replace("{name}", &format!("{}.onnx", self.sha))
            .replace("{uid}", &self.uid.to_string())
            .replace("{tid}", &self.tid.to_string())
            .replace("{secret}", &self.secret)
    }
}

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_its_role_allows() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Matrix", &["cat"]).await?;
    let other = studio.create_project("Elsewhere", &["dog"]).await?;
    let (status, uploaded) = studio
        .upload(project.id, &[("a.jpg", fixtures::jpeg(64, 48, 1, 3))])
        .await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let iid = uploaded[0]["id"].as_i64().context("uploaded image id")?;
    // The active student, which has scored the image: every read of a prediction finds one.
    let model = studio
        .register_reference_model(project.id, "student", "shapes-yolov8n-320.onnx")
        .await?;
    // A finished job: cancel and resume refuse it (409) instead of acting on it.
    let (status, job) = studio
        .post_job(project.id, serde_json::json!({"kind": "score", "model_id": model.id}))
        .await?;
    ensure!(status == 201, "score job: {job}");
    let jid = job["id"].as_i64().context("job id")?;
    studio.until_job_final(jid, std::time::Duration::from_secs(60)).await?;

    // The cast: one token per caller (a bearer token needs no anti-forgery header and survives
    // the logout route).
    let mut callers: Vec<(Caller, Option<reqwest::Client>)> = Vec::new();
    let mut owner_token_id = 0;
    for role in Role::ALL {
        let name = format!("{}-user", role.as_str());
        let session = studio.add_user(&name, "long enough password").await?;
        studio.add_member(project.id, &name, role).await?;
        let token = session.create_token(&studio.url, "matrix").await?;
        if role == Role::Owner {
            // A spare, for the revoking route (the owner keeps calling with the other).
            owner_token_id = session.create_token(&studio.url, "spare").await?.info.id;
        }
        callers.push((Caller::Member(role), Some(e2e::accounts::bearer_client(&token.token)?)));
    }
    let outsider = studio.add_user("outsider", "long enough password").await?;
    studio.add_member(other.id, "outsider", Role::Owner).await?;
    let token = outsider.create_token(&studio.url, "matrix").await?;
    callers.push((Caller::Outsider, Some(e2e::accounts::bearer_client(&token.token)?)));
    callers.push((Caller::Anonymous, None));
    let revoked = studio.add_user("revoked", "long enough password").await?;
    studio.add_member(project.id, "revoked", Role::Owner).await?;
    let token = revoked.create_token(&studio.url, "soon gone").await?;
    let response = revoked
        .cookie_client()?
        .delete(studio.api(&format!("/api/tokens/{}", token.info.id)))
        .send()
        .await?;
    ensure!(response.status() == 204, "revoke: {}", response.status());
    callers.push((Caller::RevokedToken, Some(e2e::accounts::bearer_client(&token.token)?)));
    callers.push((Caller::Admin, Some(studio.http().clone())));
    // Whom the members route removes (put back before each call).
    studio.add_user("bystander", "long enough password").await?;
    studio.add_member(project.id, "bystander", Role::Viewer).await?;
    let members: Vec<api::Member> = studio
        .get(&format!("/api/projects/{}/members", project.id))
        .await?
        .json()
        .await?;
    let uid = members
        .iter()
        .find(|m| m.username == "bystander")
        .context("bystander listed")?
        .user_id;
    let ids = Ids {
        secret: invite(&studio, project.id).await?.secret,
        pid: project.id,
        iid,
        mid: model.id,
        jid,
        sha: model.sha256.clone(),
        uid,
        tid: owner_token_id,
    };
    // The owner goes last: its allowed calls are the ones that could change something.
    callers.sort_by_key(|(caller, _)| *caller == Caller::Member(Role::Owner));

    let routes = e2e::routes::declared()?;
    let unclassified: Vec<&Route> = routes.iter().filter(|r| needs(&r.method, &r.path).is_none()).collect();
    ensure!(
        unclassified.is_empty(),
        "routes missing from the authorisation matrix (say who may call them): {unclassified:?}"
    );
    let anonymous = reqwest::Client::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (caller, client) in &callers {
        for route in &routes {
            let Some(needs) = needs(&route.method, &route.path) else {
                continue;
            };
            let want = expected(*caller, needs);
            let mut path = ids.fill(&route.path);
            if route.path == "/projects/{pid}/invites/{vid}" {
                // Revoked by whichever allowed caller came before: a fresh link each time.
                path = path.replace("{vid}", &invite(&studio, project.id).await?.invite.id.to_string());
            }
            let url = studio.api(&format!("/api{path}"));
            let client = client.as_ref().unwrap_or(&anonymous);
            if route.path == "/projects/{pid}/members/{uid}" {
                // Removed by whichever allowed caller came before.
                studio.add_member(project.id, "bystander", Role::Viewer).await?;
            }
            let mut request = client.request(route.method.clone(), &url);
            if matches!(route.method, Method::POST | Method::PUT | Method::PATCH) {
                // Malformed for every route that reads a body: allowed callers get 400/415/422.
                request = request
                    .header("content-type", "application/json")
                    .body(r#"{"matrix": ["not", "what", "any", "route", "takes"]}"#);
            }
            let response = request.send().await?;
            let status = response.status();
            // Streams (events) answer 200 at once and never end: read no further.
            let body =
                if response.headers().get("content-type").is_some_and(|v| {
                    v.as_bytes().starts_with(b"text/event-stream") || v.as_bytes() == b"application/zip"
                }) {
                    String::new()
                } else {
                    response.text().await.unwrap_or_default()
                };
            checked += 1;
            if !matches(want, status, &body, route, *caller) {
                failures.push(format!(
                    "{caller:?} {} {} → {status} (expected {want:?}): {body}",
                    route.method, route.path
                ));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {checked} calls answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ensure!(checked >= callers.len() * 40, "only {checked} calls were made");
    Ok(())
}

/// A new invite link to the project (a viewer's, valid an hour).
async fn invite(studio: &Studio, project_id: i64) -> anyhow::Result<api::CreatedInvite> {
    let response = studio
        .http()
        .post(studio.api(&format!("/api/projects/{project_id}/invites")))
        .json(&serde_json::json!({"role": "viewer", "hours": 1}))
        .send()
        .await?;
    ensure!(response.status() == 201, "invite: {}", response.status());
    Ok(response.json().await?)
}

/// Whether `status` is the outcome `want`. An access refusal says so in its code; a 404 of a
/// hidden id is the same as any missing resource's.
fn matches(want: Outcome, status: StatusCode, body: &str, route: &Route, caller: Caller) -> bool {
    let code = serde_json::from_str::<api::ErrorBody>(body)
        .map(|b| b.error.code)
        .unwrap_or_default();
    match want {
        Outcome::Unauthenticated => status == StatusCode::UNAUTHORIZED,
        Outcome::Forbidden => status == StatusCode::FORBIDDEN,
        Outcome::Hidden => status == StatusCode::NOT_FOUND,
        Outcome::Allowed => {
            // Tokens are per account: another's token id is a 404 of the handler's own.
            let someone_elses_token = route.path == "/tokens/{tid}" && caller != Caller::Member(Role::Owner);
            if someone_elses_token {
                return status == StatusCode::NOT_FOUND;
            }
            // A wrong password is the login route's own 401; anything else is a refusal of
            // the caller, which an allowed caller must never get.
            let login_refusal = route.path == "/login" && code == "wrong_credentials";
            (status != StatusCode::UNAUTHORIZED || login_refusal)
                && status != StatusCode::FORBIDDEN
                && status != StatusCode::NOT_FOUND
                && !status.is_server_error()
        }
    }
}
