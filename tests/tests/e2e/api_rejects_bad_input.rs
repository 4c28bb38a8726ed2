//! Scripts that send bad input get a JSON error with the right status, and nothing stored is lost.

use e2e::Studio;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// (what is sent, expected status, expected error code)
struct Case {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    content_type: Option<&'static str>,
    status: StatusCode,
    code: &'static str,
}

const fn case(
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        method,
        path,
        body,
        content_type: Some("application/json"),
        status,
        code,
    }
}

#[tokio::test]
async fn api_rejects_bad_input() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let http = studio.http().clone();

    let created = http
        .post(studio.api("/api/projects"))
        .json(&json!({"name": "Birds", "classes": [{"name": "sparrow"}, {"name": "crow", "prompt": "a black crow"}]}))
        .send()
        .await?;
    anyhow::ensure!(created.status() == StatusCode::CREATED, "create: {}", created.status());
    let birds: api::Project = created.json().await?;
    assert_eq!(
        birds
            .classes
            .iter()
            .map(|c| (c.id, c.name.as_str()))
            .collect::<Vec<_>>(),
        [(0, "sparrow"), (1, "crow")]
    );

    let cases = [
        case(
            "POST",
            "/api/projects",
            Some(r#"{"name": "", "classes": []}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        case(
            "POST",
            "/api/projects",
            Some(r#"{"name": "   "}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        case(
            "POST",
            "/api/projects",
            Some(r#"{"name": "Cars", "classes": [{"name": "car"}, {"name": "Car"}]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_class_name",
        ),
        case(
            "POST",
            "/api/projects",
            Some(r#"{"name": "Cars", "classes": [{"name": "car", "color": "red"}]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_class",
        ),
        case(
            "POST",
            "/api/projects",
            Some(r#"{"name": "Cars", "#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        case(
            "POST",
            "/api/projects",
            Some(r#"{"name": 42}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        case(
            "POST",
            "/api/projects",
            Some(r#"{"name": "birds"}"#),
            StatusCode::CONFLICT,
            "project_exists",
        ),
        Case {
            content_type: None,
            ..case(
                "POST",
                "/api/projects",
                Some(r#"{"name": "Cars"}"#),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            )
        },
        case("GET", "/api/projects/999", None, StatusCode::NOT_FOUND, "not_found"),
        case(
            "GET",
            "/api/projects/abc",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        case(
            "PATCH",
            "/api/projects/999",
            Some(r#"{"name": "x"}"#),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            "PATCH",
            "/api/projects/1",
            Some(r#"{"split": {"train_pct": 90, "val_pct": 20, "test_pct": 0}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_split",
        ),
        case(
            "PATCH",
            "/api/projects/1",
            Some(r#"{"classes": [{"id": 7, "name": "ghost"}]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_class",
        ),
        case(
            "DELETE",
            "/api/health",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        case("GET", "/api/no-such-route", None, StatusCode::NOT_FOUND, "no_route"),
    ];
    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes())?;
        let mut request = http.request(method, studio.api(case.path));
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = case.body {
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let what = format!("{} {} {:?}", case.method, case.path, case.body);
        assert_eq!(status, case.status, "{what}: {body}");
        assert_eq!(body["error"]["code"], case.code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: a readable message is required: {body}");
    }

    // Nothing above changed what was stored, and the server is still answering.
    let health: Value = http.get(studio.api("/api/health")).send().await?.json().await?;
    assert_eq!(health["status"], "ok");
    let projects: Vec<api::Project> = http.get(studio.api("/api/projects")).send().await?.json().await?;
    assert_eq!(projects, vec![birds.clone()]);

    // A valid edit still works: rename a class, append one, change the split.
    let patched: api::Project = http
        .patch(studio.api(&format!("/api/projects/{}", birds.id)))
        .json(&json!({
            "classes": [{"id": 1, "name": "raven"}, {"id": 0, "name": "sparrow"}, {"name": "gull"}],
            "split": {"train_pct": 70, "val_pct": 20, "test_pct": 10}
        }))
        .send()
        .await?
        .json()
        .await?;
    let classes: Vec<(u32, &str)> = patched.classes.iter().map(|c| (c.id, c.name.as_str())).collect();
    assert_eq!(classes, [(1, "raven"), (0, "sparrow"), (2, "gull")]);
    assert_eq!(
        patched.split,
        api::SplitRatios {
            train_pct: 70,
            val_pct: 20,
            test_pct: 10
        }
    );

    // Deleting a class never frees its id for reuse.
    let patched: api::Project = http
        .patch(studio.api(&format!("/api/projects/{}", birds.id)))
        .json(&json!({"classes": [{"id": 0, "name": "sparrow"}, {"name": "pigeon"}]}))
        .send()
        .await?
        .json()
        .await?;
    let classes: Vec<(u32, &str)> = patched.classes.iter().map(|c| (c.id, c.name.as_str())).collect();
    assert_eq!(classes, [(0, "sparrow"), (3, "pigeon")]);
    Ok(())
}
