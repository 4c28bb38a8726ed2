//! Wire and domain types shared by the Distillery server (`backend`) and the browser app
//! (`frontend`), plus the pure rules both sides apply to them.
//!
//! Invariant: this crate does no IO and depends on nothing but `serde`, so it builds for
//! `wasm32-unknown-unknown` and every rule here runs identically in the browser and on the server.

// DESIGN's rule, enforced: every public item says what it is for.
#![warn(missing_docs)]

pub mod account;
pub mod audit;
pub mod boxes;
pub mod coco;
pub mod error;
pub mod evaluation;
pub mod event;
pub mod health;
pub mod image;
pub mod job;
pub mod label_errors;
pub mod live;
pub mod model;
pub mod project;
pub mod queue;
pub mod split;
pub mod uncertainty;
pub mod worker;
pub mod yolo;

pub use account::{
    AcceptInvite, AccountError, ApiToken, Contribution, CreatedInvite, CreatedToken, Credentials, Invite, InviteOffer,
    JoinedProject, Member, NewInvite, NewMember, NewToken, NewUser, PasswordChange, Role, Session, SetupState, User,
    validate_password, validate_token_name, validate_username,
};
pub use audit::{AuditChange, AuditEntry, ImageHistory};
pub use boxes::{
    AppliedOp, BoundingBox, BoxError, BoxInput, BoxOp, BoxSource, ImageBoxes, OpKind, OpsRequest, OpsResponse,
    RefusedOp, ReplaceBoxes, clip_box, normalize_box,
};
pub use error::{ErrorBody, ErrorDetail};
pub use evaluation::{Agreement, ClassEvaluation, ModelEvaluation, ProjectEvaluation};
pub use event::ProjectEvent;
pub use health::Health;
pub use image::{ExportCounts, ImageInfo, ImagePage, ImageStatus, ImportReport, Split, StatusChange, UploadedFile};
pub use job::{ImageSelection, Job, JobKind, JobState, NamedSelection, NewJob, TrainSettings, TrainingEpoch};
pub use label_errors::{ConfirmLabel, ImageLabelErrors, Suspicion, SuspicionKind};
pub use live::{LiveEvent, LiveRequest, Presence};
pub use model::{
    ActiveStudent, ModelPatch, ModelRole, RegisteredModel, TrainedBy, map_classes_by_name, student_change_message,
};
pub use project::{
    ClassRemoval, ClassSpec, NewProject, ObjectClass, Project, ProjectPatch, SplitRatios, ValidationError,
    default_class_color, parse_class_list, validate_classes, validate_project_name,
};
pub use queue::{
    Assignment, ImagePrediction, NewAssignment, NextImage, PendingImages, PredictedBox, PredictionReport, Queue,
    QueueEntry,
};
pub use uncertainty::{Aggregation, Strategy};
