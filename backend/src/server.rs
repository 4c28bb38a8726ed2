//! `distillery serve`: assembles the HTTP app and runs it until SIGINT/SIGTERM.

use std::path::Path;

use anyhow::Context;
use axum::Router;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use axum::serve::ListenerExt;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::ServeConfig;
use crate::error::{api_method_not_allowed, api_route_not_found};
use crate::events::ProjectEvents;
use crate::fanout::Fanout;
use crate::store::Store;
use crate::{
    AppState, access, accounts, annotations, assignments, audit, contributions, db, evaluation, events, export, health,
    images, import, invites, jobs, label_errors, live, members, predictions, projects, registry, shared_queue, web,
};

/// The whole HTTP app: `/api/*` plus the web app, with tracing, compression and the
/// cross-origin-isolation headers on every response.
pub fn app(state: AppState, web_dir: &Path) -> Router {
    let api = Router::new()
        .merge(health::router())
        .merge(accounts::router())
        .merge(members::router())
        .merge(invites::router())
        .merge(contributions::router())
        .merge(projects::router())
        .merge(images::router())
        .merge(annotations::router())
        .merge(audit::router())
        .merge(export::router())
        .merge(import::router())
        .merge(registry::router())
        .merge(predictions::router())
        .merge(shared_queue::router())
        .merge(assignments::router())
        .merge(jobs::router())
        .merge(events::router())
        .merge(evaluation::router())
        .merge(label_errors::router())
        .merge(live::router())
        .fallback(api_route_not_found)
        .method_not_allowed_fallback(api_method_not_allowed)
        // After the routes: it sees which one matched and its ids.
        .layer(axum::middleware::from_fn_with_state(state.clone(), access::authorize));
    // COOP + COEP make the page cross-origin isolated, which SharedArrayBuffer (and so
    // multi-threaded wasm inference) requires.
    let isolation = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-embedder-policy"),
            HeaderValue::from_static("require-corp"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    Router::new()
        .nest("/api", api)
        .merge(web::router(web_dir))
        .with_state(state)
        .layer(isolation)
        .layer(CompressionLayer::new().compress_when(compressible()))
        .layer(TraceLayer::new_for_http())
}

/// Which responses are gzipped on the fly: text, JSON, JavaScript and wasm. Images, zip exports
/// and ONNX files are already dense (compressing them only burns the executor's CPU), and an
/// event stream must reach the page event by event, not when a gzip block fills.
fn compressible() -> impl Predicate {
    SizeAbove::new(256).and(|_: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions| {
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        (essence.starts_with("text/") && essence != "text/event-stream")
            || matches!(
                essence,
                "application/json" | "application/javascript" | "application/wasm" | "image/svg+xml"
            )
    })
}

/// Opens the studio's data, binds, prints the URL and serves until a shutdown signal; requests
/// in flight are finished before it returns.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let data_dir = &config.data.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    let db = db::open(&config.data.database_url()).await?;
    let store = Store::open(data_dir, config.data.store.as_deref()).await?;
    if !config.web_dir.join("index.html").is_file() {
        tracing::warn!(
            web_dir = %config.web_dir.display(),
            "the web app is not built there (run `cargo xtask build-web`); only the API is served"
        );
    }
    // A bad engine setting stops here, before the URL is printed.
    let events = ProjectEvents::new(Fanout::for_database(&db));
    let name = jobs::queue::Runner::default_name(data_dir);
    let jobs = jobs::Jobs::new(&config.inference, events.clone(), name, false)?;
    // Replicas sharing a PostgreSQL database hear each other's changes.
    let database_url = config.data.database_url();
    events
        .fanout()
        .listen(&database_url, events.clone(), jobs.clone())
        .await
        .with_context(|| format!("cannot listen for other processes' news on {database_url}"))?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener.local_addr().context("cannot read the bound address")?;
    // Small writes (a live event, an ops answer) leave at once: with Nagle's algorithm a second
    // event on a socket waited for the ACK of the first, which a delayed ACK holds up to 40 ms.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    println!(
        "Distillery is running at http://{addr}/ (data in {})",
        data_dir.display()
    );
    jobs.start(db.clone(), store.clone(), config.limits.max_pixels())
        .await?;
    let app = app(
        AppState {
            db: db.clone(),
            store,
            limits: config.limits,
            jobs: jobs.clone(),
            events: events.clone(),
        },
        &config.web_dir,
    );
    // Connection info gives login throttling the client's address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        // Open pages' event streams never end by themselves.
        events.close();
    })
    .await
    .context("the server stopped with an error")?;
    jobs.stop(&db).await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
