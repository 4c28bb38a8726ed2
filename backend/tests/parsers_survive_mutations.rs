//! The fuzz targets' properties (`fuzz/checks.rs`), replayed on stable in every `cargo xtask test`:
//! each checked-in seed, then a few hundred mutations of it (bit flips, overwritten, inserted,
//! removed and repeated bytes, truncation) from a fixed RNG seed, so a failure is the same on
//! every run. The coverage-guided search itself is `cargo xtask fuzz` (nightly).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[path = "../../fuzz/checks.rs"]
mod checks;

/// Mutations per seed file: the three targets together take a few seconds in a debug build.
const MUTATIONS_PER_SEED: usize = 2000;

/// Bytes that steer parsers into their edge cases: empty, maximal, quotes, digits, separators.
const INTERESTING: [u8; 12] = [0, 0xff, 0x7f, b'"', b'0', b'1', b'9', b'-', b'.', b'\n', b' ', b'{'];

#[test]
fn yolo_label_parser_survives_mutations() {
    replay("yolo_labels", checks::yolo_labels);
}

#[test]
fn coco_import_survives_mutations() {
    replay("coco_import", checks::coco_import);
}

#[test]
fn zip_import_survives_mutations() {
    replay("zip_import", checks::zip_import);
}

/// Runs `check` on every seed of `target` and on its mutations; a failing input is written to
/// the temporary folder so `cargo xtask fuzz` (or a debugger) can replay it.
fn replay(target: &str, check: fn(&[u8])) {
    let seeds_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds").join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&seeds_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", seeds_dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", seeds_dir.display()));
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", seeds_dir.display());
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut cases = 0;
    for seed_path in &seeds {
        let seed = std::fs::read(seed_path).unwrap_or_else(|e| panic!("{}: {e}", seed_path.display()));
        for variant in 0..=MUTATIONS_PER_SEED {
            let input = if variant == 0 {
                seed.clone()
            } else {
                mutate(&seed, &mut rng)
            };
            if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
                let kept = std::env::temp_dir().join(format!("distillery-{target}-failure-{cases}"));
                let _ = std::fs::write(&kept, &input);
                panic!(
                    "{target}: mutation {variant} of {} broke the property; its input is {}",
                    seed_path.display(),
                    kept.display()
                );
            }
            cases += 1;
        }
    }
    eprintln!("{target}: {cases} inputs");
}

/// One to four random edits of `seed`.
fn mutate(seed: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(..=bytes.len());
        match rng.u8(..6) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.u8(..8),
            1 if at < bytes.len() => bytes[at] = INTERESTING[rng.usize(..INTERESTING.len())],
            2 => {
                let inserted: Vec<u8> = (0..rng.usize(1..=8)).map(|_| rng.u8(..)).collect();
                bytes.splice(at..at, inserted);
            }
            3 => {
                let end = (at + rng.usize(1..=16)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => bytes.truncate(at),
            _ => {
                // A repeated slice: duplicated entries, lengths that no longer add up.
                let end = (at + rng.usize(1..=32)).min(bytes.len());
                let repeated = bytes[at..end].to_vec();
                bytes.splice(at..at, repeated);
            }
        }
    }
    bytes
}
