//! Importing an arbitrary "zip" never panics and never writes outside its staging area.
//! The property is `checks::zip_import`, which `cargo xtask test` also replays on stable.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::zip_import(data));
