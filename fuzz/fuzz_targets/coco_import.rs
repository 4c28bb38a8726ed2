//! Importing a folder whose COCO `annotations.json` is arbitrary bytes never panics: it is
//! either a plan or a list of problems.
#![no_main]

use backend::import::{DatasetSource, ImportLimits, plan};
use backend::store::Store;
use libfuzzer_sys::fuzz_target;

/// A 1×1 PNG for the annotations to point at.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41,
    0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fuzz_target!(|data: &[u8]| {
    let (Ok(dataset), Ok(data_dir)) = (tempfile::tempdir(), tempfile::tempdir()) else { return };
    let _ = std::fs::write(dataset.path().join("annotations.json"), data);
    let _ = std::fs::create_dir(dataset.path().join("images"));
    let _ = std::fs::write(dataset.path().join("images").join("a.png"), PIXEL_PNG);
    let Ok(store) = Store::open(data_dir.path()) else { return };
    let limits = ImportLimits { max_entries: 100, max_total_bytes: 1 << 24, max_ratio: 200, max_pixels: 1 << 20 };
    let _ = plan(&DatasetSource::Folder(dataset.path().to_owned()), &store, limits);
});
