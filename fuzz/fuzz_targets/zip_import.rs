//! Importing an arbitrary "zip" never panics and never writes outside its staging area: it is
//! either a plan or a list of problems.
#![no_main]

use backend::import::{DatasetSource, ImportLimits, plan};
use backend::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Ok(upload), Ok(data_dir)) = (tempfile::tempdir(), tempfile::tempdir()) else { return };
    let archive = upload.path().join("dataset.zip");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let Ok(store) = Store::open(data_dir.path()) else { return };
    let limits = ImportLimits { max_entries: 200, max_total_bytes: 1 << 24, max_ratio: 200, max_pixels: 1 << 20 };
    let _ = plan(&DatasetSource::Zip(archive), &store, limits);
});
