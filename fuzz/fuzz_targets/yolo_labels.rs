//! The YOLO label parser never panics, and what it accepts is a valid label.
//! The property is `checks::yolo_labels`, which `cargo xtask test` also replays on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::yolo_labels(data));
