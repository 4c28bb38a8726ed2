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
    let http = reqwest::Client::new();

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
