//! The YOLO label parser never panics, and what it accepts is a valid label.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&class_count, rest)) = data.split_first() else { return };
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
});
