//! What each fuzz target asserts about one input, shared by the cargo-fuzz targets
//! (`fuzz_targets/`, nightly, coverage-guided) and by `backend/tests/parsers_survive_mutations.rs`,
//! which replays the seeds and deterministic mutations of them in every `cargo xtask test` on
//! stable. Included by path from both, so the property is written once.

use std::path::{Path, PathBuf};

use backend::import::{DatasetSource, ImportLimits, plan};
use backend::store::Store;

/// A 1×1 PNG for the COCO annotations to point at.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49,
    0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The YOLO label parser never panics, and what it accepts is a valid label. The first byte is
/// the class count, the rest the label file.
pub fn yolo_labels(data: &[u8]) {
    let Some((&class_count, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let class_count = usize::from(class_count);
    match api::yolo::parse_labels(text, class_count) {
        Ok(labels) => {
            for label in labels {
                assert!(label.class_index < class_count);
                for value in [label.cx, label.cy, label.w, label.h] {
                    assert!((0.0..=1.0).contains(&value), "{label:?}");
                }
                assert!(label.w > 0.0 && label.h > 0.0, "{label:?}");
            }
        }
        Err(errors) => assert!(!errors.is_empty() && errors.iter().all(|e| e.line >= 1)),
    }
}

/// Importing a folder whose COCO `annotations.json` is `data` never panics: it is either a plan
/// or a list of problems.
pub fn coco_import(data: &[u8]) {
    let (Ok(dataset), Ok(data_dir)) = (tempfile::tempdir(), tempfile::tempdir()) else {
        return;
    };
    let _ = std::fs::write(dataset.path().join("annotations.json"), data);
    let _ = std::fs::create_dir(dataset.path().join("images"));
    let _ = std::fs::write(dataset.path().join("images").join("a.png"), PIXEL_PNG);
    let Ok(store) = Store::data_folder(data_dir.path()) else {
        return;
    };
    let limits = ImportLimits {
        max_entries: 100,
        max_total_bytes: 1 << 24,
        max_ratio: 200,
        max_pixels: 1 << 20,
    };
    let _ = plan(&DatasetSource::Folder(dataset.path().to_owned()), &store, limits);
}

/// Importing `data` as a zip never panics and never writes outside its staging area: it is
/// either a plan or a list of problems, and afterwards every file under the run's folder is the
/// archive itself or lies in the store's `staging/`.
pub fn zip_import(data: &[u8]) {
    let Ok(root) = tempfile::tempdir() else { return };
    // Nested a few levels deep, so an entry that climbs out with `../` still lands in `root`,
    // where the check below sees it.
    let (upload, data_dir) = (root.path().join("a/b/upload"), root.path().join("a/b/data"));
    if std::fs::create_dir_all(&upload).is_err() || std::fs::create_dir_all(&data_dir).is_err() {
        return;
    }
    let archive = upload.join("dataset.zip");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let Ok(store) = Store::data_folder(&data_dir) else {
        return;
    };
    let limits = ImportLimits {
        max_entries: 200,
        max_total_bytes: 1 << 24,
        max_ratio: 200,
        max_pixels: 1 << 20,
    };
    let outcome = plan(&DatasetSource::Zip(archive.clone()), &store, limits);
    let staging = data_dir.join("staging");
    let mut written = Vec::new();
    files_below(root.path(), &mut written);
    for path in written {
        assert!(
            path == archive || path.starts_with(&staging),
            "the import wrote {} outside staging",
            path.display()
        );
    }
    drop(outcome);
}

/// Every file below `dir`.
fn files_below(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_below(&path, found);
        } else {
            found.push(path);
        }
    }
}
