//! Importing a folder whose COCO `annotations.json` is arbitrary bytes never panics.
//! The property is `checks::coco_import`, which `cargo xtask test` also replays on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::coco_import(data));
