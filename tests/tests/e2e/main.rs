//! End-to-end tests, one module per thing a user does. They start the real `distillery` binary
//! (and, for UI tests, a real headless Chromium) — run them with `cargo xtask test`.

mod accept_teacher_proposals;
mod api_rejects_bad_input;
mod architecture_lists_every_crate;
mod attacks_from_advisories;
mod authorization_matrix;
mod auto_label_with_teacher;
mod check_quality_in_browser;
mod collaborate_live_in_two_browsers;
mod crash_keeps_acknowledged_edits;
mod create_project_in_browser;
mod distill_a_folder;
mod edit_boxes_and_review;
mod edit_ontology_in_browser;
mod edit_while_server_is_down;
mod evaluate_models;
mod every_route_answers_json_errors;
mod export_yolo_zip;
mod fleet_of_workers;
mod import_datasets;
mod keep_files_in_object_storage;
mod label_first_image;
mod live_channel_resumes;
mod many_annotators_at_once;
mod postgres_schema_matches_sqlite;
mod prelabel_in_browser;
mod rank_images_by_uncertainty;
mod refused_edit_stays_visible;
mod replicas_share_one_database;
mod restart_keeps_projects;
mod serve_web_app;
mod share_the_queue_and_review;
mod sign_in_in_browser;
mod train_student;
mod upload_images;
