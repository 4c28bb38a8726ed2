//! The Distillery server: HTTP API and web app host (Axum), command line, job workers, SQLite
//! or PostgreSQL storage.
//!
//! Boundary: the only crate that knows SQL, HTTP and the filesystem layout of a studio's data
//! folder. Model maths lives in `models`/`train`, wire types in `api`.

pub mod access;
pub mod accounts;
pub mod annotations;
pub mod assignments;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contributions;
pub mod db;
#[cfg(feature = "student")]
pub mod distill;
pub mod error;
pub mod evaluation;
pub mod events;
pub mod export;
pub mod extract;
pub mod fanout;
pub mod health;
pub mod images;
pub mod imaging;
pub mod import;
pub mod invites;
pub mod jobs;
pub mod label_errors;
pub mod live;
pub mod members;
pub mod predictions;
pub mod projects;
pub mod registry;
pub mod server;
pub mod shared_queue;
pub mod store;
pub mod stored_file;
pub mod web;
pub mod worker;

use sqlx::AnyPool;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Metadata store (projects, classes, images, boxes, …).
    pub db: AnyPool,
    /// Image bytes and thumbnails.
    pub store: store::Store,
    /// What clients may send.
    pub limits: config::Limits,
    /// The background job runner.
    pub jobs: jobs::Jobs,
    /// What the projects' open pages are told as it happens.
    pub events: events::ProjectEvents,
}
