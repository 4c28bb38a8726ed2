//! Every API route answers bad input with the one error shape — `{"error": {"code", "message"}}`
//! as JSON, with a 4xx status — never a plain-text rejection or a 5xx. The routes are read from
//! the server's own sources (`.route("…", get(…).post(…))` in `backend/src`), so a route added
//! tomorrow is tested tomorrow without touching this file.
//!
//! The status rule (README, "Errors"): 400 a malformed request (unparsable path, query, JSON or
//! multipart), 404 an unknown id, 409 a conflict with what is stored, 413/415 too large / wrong
//! media type, 422 well-formed but invalid; 5xx only for the server's own faults.

use anyhow::{Context, ensure};
use e2e::{Studio, fixtures};
use reqwest::Method;
use serde_json::{Value, json};

/// Whether a response is the API's error shape with a 4xx status.
async fn json_client_error(response: reqwest::Response) -> Result<(), String> {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let shaped = body["error"]["code"].as_str().is_some_and(|c| !c.is_empty())
        && body["error"]["message"].as_str().is_some_and(|m| !m.is_empty());
    if status.is_client_error() && content_type.starts_with("application/json") && shaped {
        Ok(())
    } else {
        Err(format!("{status} {content_type}: {text}"))
    }
}

#[tokio::test]
async fn every_route_answers_json_errors() -> anyhow::Result<()> {
    let routes = e2e::routes::declared()?;
    let studio = Studio::start().await?;
    // Signed in as the admin, so each request gets past access control to the parsing.
    let http = studio.http().clone();
    // Real ids for every kind of path parameter, so the request gets past the path.
    let project = studio
        .create_project("Routes", &["circle", "square", "triangle", "star"])
        .await?;
    let (_, uploaded) = studio
        .upload(project.id, &[("a.png", fixtures::png(64, 48, 1))])
        .await?;
    let image = uploaded[0]["id"].as_i64().context("image id")?;
    let form = reqwest::multipart::Form::new().text("role", "student").part(
        "file",
        reqwest::multipart::Part::bytes(e2e::reference_model_file("shapes-yolov8n-320.onnx")?).file_name("s.onnx"),
    );
    let model: Value = http
        .post(studio.api(&format!("/api/projects/{}/models", project.id)))
        .multipart(form)
        .send()
        .await?
        .json()
        .await?;
    let job: Value = http
        .post(studio.api(&format!("/api/projects/{}/jobs", project.id)))
        .json(&json!({"kind": "score"}))
        .send()
        .await?
        .json()
        .await?;
    // Let the job finish, so its event stream ends instead of waiting.
    for _ in 0..200 {
        let now: Value = http
            .get(studio.api(&format!("/api/jobs/{}", job["id"])))
            .send()
            .await?
            .json()
            .await?;
        if matches!(now["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let model_file = model["url"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let real = |path: &str| {
        path.replace("{pid}", &project.id.to_string())
            .replace("{iid}", &image.to_string())
            .replace("{mid}", &model["id"].to_string())
            .replace("{jid}", &job["id"].to_string())
            .replace("{name}", &model_file)
    };

    let mut failures = Vec::new();
    let mut checked = 0;
    for route in &routes {
        let url = |path: String| studio.api(&format!("/api{path}"));
        // 1. A path parameter that is not an id.
        if route.path.contains('{') {
            let mut bad = route.path.clone();
            while let (Some(open), Some(close)) = (bad.find('{'), bad.find('}')) {
                bad.replace_range(open..=close, "not%20an%20id");
            }
            let response = http.request(route.method.clone(), url(bad)).send().await?;
            if let Err(e) = json_client_error(response).await {
                failures.push(format!("{} {} with a bad path: {e}", route.method, route.path));
            }
            checked += 1;
        }
        let target = url(real(&route.path));
        // 2. A query whose every usual parameter is of the wrong type: refused with the error
        //    shape, or ignored by a route that reads no query.
        let query = "?limit=many&cursor=%25%25&model_id=x&status=bogus&strategy=7&aggregation=none&seed=-1\
                     &min_conf=high&format=gif&include=nope&since=x&class_id=x&dry_run=maybe";
        let response = http
            .request(route.method.clone(), format!("{target}{query}"))
            .send()
            .await?;
        if !response.status().is_success()
            && let Err(e) = json_client_error(response).await
        {
            failures.push(format!("{} {} with a bad query: {e}", route.method, route.path));
        }
        checked += 1;
        if route.method == Method::GET {
            continue;
        }
        // 3. Bodies that are not what any route takes: broken JSON, JSON of the wrong shape, a
        //    multipart body that does not parse, and no content type at all.
        let bodies: [(&str, &str); 4] = [
            ("application/json", "{\"ops\": [ {\"op\":"),
            (
                "application/json",
                "{\"ops\": 5, \"name\": [], \"kind\": 3, \"classes\": {}, \"status\": 1, \"class_map\": 7}",
            ),
            (
                "multipart/form-data; boundary=XYZ",
                "--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end",
            ),
            ("", "plain words"),
        ];
        for (content_type, body) in bodies {
            let mut request = http.request(route.method.clone(), &target).body(body.to_owned());
            if !content_type.is_empty() {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await?;
            let status = response.status();
            // A route that takes no body (cancel) may succeed or refuse on its own terms.
            if !status.is_success()
                && let Err(e) = json_client_error(response).await
            {
                failures.push(format!(
                    "{} {} with body {content_type:?}: {e}",
                    route.method, route.path
                ));
            }
            checked += 1;
        }
    }
    println!("{} routes, {checked} bad requests", routes.len());
    ensure!(
        failures.is_empty(),
        "{} answers broke the rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
