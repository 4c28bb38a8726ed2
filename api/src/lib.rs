//! Wire and domain types shared by the Distillery server (`backend`) and the browser app
//! (`frontend`), plus the pure rules both sides apply to them.
//!
//! Invariant: this crate does no IO and depends on nothing but `serde`, so it builds for
//! `wasm32-unknown-unknown` and every rule here runs identically in the browser and on the server.

pub mod error;
pub mod health;
pub mod project;

pub use error::{ErrorBody, ErrorDetail};
pub use health::Health;
pub use project::{
    ClassSpec, NewProject, ObjectClass, Project, ProjectPatch, SplitRatios, ValidationError,
    default_class_color, parse_class_list, validate_classes, validate_project_name,
};
