//! A throw-away static file server for browser tests and benchmarks: serves folders under URL
//! prefixes with CORS and `Cross-Origin-Resource-Policy: cross-origin`, so a cross-origin-isolated
//! studio page (and its worker) may fetch from it.

use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// A running file server; stops when dropped.
pub struct FileServer {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    /// Serves each `(prefix, folder)` at `/<prefix>/…`.
    pub async fn start(folders: &[(&str, PathBuf)]) -> anyhow::Result<FileServer> {
        let mut app = Router::new();
        for (prefix, folder) in folders {
            app = app.nest_service(&format!("/{prefix}"), ServeDir::new(folder));
        }
        let app = app
            .layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static("access-control-allow-origin"),
                HeaderValue::from_static("*"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("cross-origin"),
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FileServer { url, task })
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
