//! The browser gets the app with the headers it relies on: MIME types, cross-origin isolation,
//! caching that is safe across deploys, gzip, and `index.html` for app routes.

use e2e::Studio;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn serve_web_app() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let http = studio.http().clone();

    let index = http.get(&studio.url).send().await?;
    assert_eq!(index.status(), StatusCode::OK);
    assert!(
        header(&index, CONTENT_TYPE).starts_with("text/html"),
        "{:?}",
        index.headers()
    );
    assert_eq!(header(&index, "cross-origin-opener-policy"), "same-origin");
    assert_eq!(header(&index, "cross-origin-embedder-policy"), "require-corp");
    assert_eq!(
        header(&index, CACHE_CONTROL),
        "no-cache",
        "index.html must be revalidated"
    );
    let html = index.text().await?;

    // App routes are answered with the app itself; the client-side router takes it from there.
    for route in ["/projects/1", "/projects/1/images/2", "/no/such/page"] {
        let page = http.get(studio.api(route)).send().await?;
        assert_eq!(page.status(), StatusCode::OK, "{route}");
        assert_eq!(page.text().await?, html, "{route}");
    }

    // The wasm module: right MIME type (streaming compilation needs it), cached for good, gzipped.
    let wasm_path = html
        .split('"')
        .find(|part| part.starts_with('/') && part.ends_with("_bg.wasm"))
        .ok_or_else(|| anyhow::anyhow!("index.html names no wasm module:\n{html}"))?
        .to_owned();
    let wasm = http
        .get(studio.api(&wasm_path))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(wasm.status(), StatusCode::OK);
    assert_eq!(header(&wasm, CONTENT_TYPE), "application/wasm");
    assert_eq!(header(&wasm, CACHE_CONTROL), "public, max-age=31536000, immutable");
    assert_eq!(header(&wasm, CONTENT_ENCODING), "gzip");
    assert_eq!(header(&wasm, "cross-origin-embedder-policy"), "require-corp");
    let plain = http.get(studio.api(&wasm_path)).send().await?.bytes().await?;
    assert_eq!(&plain[..4], b"\0asm", "uncompressed when gzip is not accepted");

    // API answers are JSON, compressed when large enough and asked for.
    let health = http.get(studio.api("/api/health")).send().await?;
    assert_eq!(header(&health, CONTENT_TYPE), "application/json");
    let body: serde_json::Value = health.json().await?;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    Ok(())
}

/// Compression is for what shrinks: a browser that accepts gzip gets JSON gzipped, but image
/// bytes, thumbnails, model files and zip exports as they are (already dense; gzipping them on
/// the fly would only spend the server's CPU).
#[tokio::test]
async fn gzip_only_what_shrinks() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let http = studio.http().clone();
    let project = studio
        .create_project("Gzip", &["circle", "square", "triangle", "star"])
        .await?;
    let photo = e2e::reference_model_file("shapes/images/test/test_0000.jpg")?;
    let (status, uploaded) = studio.upload(project.id, &[("a.jpg", photo)]).await?;
    assert!(status.is_success(), "{uploaded}");
    let image_id = uploaded[0]["id"].as_i64().unwrap_or_default();
    let labeled = http
        .put(studio.api(&format!("/api/images/{image_id}/boxes")))
        .json(&serde_json::json!({"boxes": [{"class_id": project.classes[0].id, "x0": 10, "y0": 10, "x1": 50, "y1": 60}]}))
        .send()
        .await?;
    assert!(labeled.status().is_success(), "{}", labeled.text().await?);
    let form = reqwest::multipart::Form::new().text("role", "student").part(
        "file",
        reqwest::multipart::Part::bytes(e2e::reference_model_file("shapes-yolov8n-320.onnx")?).file_name("s.onnx"),
    );
    let model: serde_json::Value = http
        .post(studio.api(&format!("/api/projects/{}/models", project.id)))
        .multipart(form)
        .send()
        .await?
        .json()
        .await?;
    let model_url = model["url"].as_str().unwrap_or_default().to_owned();
    let pid = project.id;
    let dense = [
        format!("/api/images/{image_id}/file"),
        format!("/api/images/{image_id}/thumb"),
        model_url.clone(),
        format!("/api/models/{}/file", model["id"]),
        format!("/api/projects/{pid}/export?format=yolo&include=labeled"),
    ];
    for path in dense {
        let response = http
            .get(studio.api(&path))
            .header("accept-encoding", "gzip")
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&response, CONTENT_ENCODING), "", "{path} is sent as it is");
    }
    let listing = http
        .get(studio.api(&format!("/api/projects/{pid}/models")))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(header(&listing, CONTENT_TYPE), "application/json");
    assert_eq!(
        header(&listing, CONTENT_ENCODING),
        "gzip",
        "JSON shrinks, so it is gzipped"
    );
    Ok(())
}
