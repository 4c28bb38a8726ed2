//! Importing an arbitrary "zip" never panics and never writes outside its staging area: it is
//! either a plan or a list of problems, and afterwards every file under the fuzz run's folder is
//! the archive itself or lies in the store's `staging/`.
#![no_main]

use std::path::{Path, PathBuf};

use backend::import::{DatasetSource, ImportLimits, plan};
use backend::store::Store;
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|data: &[u8]| {
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
    let Ok(store) = Store::open(&data_dir) else { return };
    let limits = ImportLimits { max_entries: 200, max_total_bytes: 1 << 24, max_ratio: 200, max_pixels: 1 << 20 };
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
});
