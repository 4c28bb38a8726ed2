//! Hosting the built web app (Trunk's `dist/`): files with the right MIME types, precompressed
//! `.gz` siblings when the build made them, `index.html` for every app route (the app routes on
//! the client), and cache headers that let browsers keep content-hashed assets forever.

use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::services::{ServeDir, ServeFile};

/// Routes serving `web_dir`; any path that is not a file gets `index.html`.
pub fn router<S: Clone + Send + Sync + 'static>(web_dir: &Path) -> Router<S> {
    let index = ServeFile::new(web_dir.join("index.html")).precompressed_gzip();
    let files = ServeDir::new(web_dir).precompressed_gzip().fallback(index);
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_control))
}

/// Content-hashed assets never change under their name: cache for a year. Everything else
/// (`index.html` above all) is revalidated, so a new build reaches browsers on the next load.
async fn cache_control(request: Request, next: Next) -> Response {
    let immutable = is_content_hashed(request.uri().path());
    let mut response = next.run(request).await;
    let policy = if immutable && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

/// Trunk names hashed assets `<stem>-<hash>[_bg].<ext>`, the hash a 64-bit number in hex without
/// zero padding (so usually 16 digits, sometimes fewer).
fn is_content_hashed(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default();
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    match stem.rsplit_once('-') {
        Some((_, hash)) => (12..=16).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_content_hashed;

    #[test]
    fn recognises_trunk_hashes() {
        let cases = [
            ("/frontend-5f1a2b3c4d5e6f70.js", true),
            ("/frontend-5f1a2b3c4d5e6f70_bg.wasm", true),
            ("/style-0123456789abcdef.css", true),
            ("/frontend-f5db931fca794da_bg.wasm", true),
            ("/my-favicon.svg", false),
            ("/index.html", false),
            ("/projects/12", false),
            ("/icon-small.svg", false),
            ("/", false),
        ];
        for (path, expected) in cases {
            assert_eq!(is_content_hashed(path), expected, "{path}");
        }
    }
}
