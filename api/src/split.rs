//! Which split each image goes to: a hash of the image id and the project's seed, so the answer
//! never changes between exports unless the seed or the ratios do.

use crate::{Split, SplitRatios};

/// The split of one image by the ratios alone (ignoring the "both splits non-empty" repair that
/// [`assign_splits`] applies to whole datasets).
pub fn split_of(image_id: i64, seed: u32, ratios: SplitRatios) -> Split {
    let bucket = bucket(image_id, seed);
    if bucket < u64::from(ratios.train_pct) {
        Split::Train
    } else if bucket < u64::from(ratios.train_pct) + u64::from(ratios.val_pct) {
        Split::Val
    } else {
        Split::Test
    }
}

/// Splits for a whole export, in the order of `images` (`(id, fixed split)`). Fixed splits are
/// kept. Ultralytics needs images in both train and val: when hashing left one of them empty,
/// the non-fixed image whose hash lies closest to the other split moves over. A single image
/// cannot fill both and keeps its hashed split.
pub fn assign_splits(images: &[(i64, Option<Split>)], seed: u32, ratios: SplitRatios) -> Vec<Split> {
    let mut splits: Vec<Split> = images
        .iter()
        .map(|&(id, fixed)| fixed.unwrap_or_else(|| split_of(id, seed, ratios)))
        .collect();
    for wanted in [Split::Val, Split::Train] {
        if images.len() < 2 || splits.contains(&wanted) {
            continue;
        }
        // Move the free image from the most populous other split, preferring the largest hash
        // for val (the end of the range) and the smallest for train.
        let candidate = images
            .iter()
            .enumerate()
            .filter(|(i, (_, fixed))| fixed.is_none() && splits.iter().filter(|s| **s == splits[*i]).count() > 1)
            .map(|(i, (id, _))| (i, bucket(*id, seed)))
            .max_by_key(|&(_, b)| if wanted == Split::Val { b } else { u64::MAX - b });
        if let Some((index, _)) = candidate {
            splits[index] = wanted;
        }
    }
    splits
}

/// 0..100 from SplitMix64 of the id and seed: uniform and stable across platforms.
fn bucket(image_id: i64, seed: u32) -> u64 {
    splitmix64((image_id as u64) ^ (u64::from(seed) << 32)) % 100
}

/// SplitMix64's output function: a stable, well-mixed hash of one 64-bit value.
pub fn splitmix64(value: u64) -> u64 {
    let mut z = value ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_honoured_over_many_images() {
        let ratios = SplitRatios {
            train_pct: 70,
            val_pct: 20,
            test_pct: 10,
        };
        let images: Vec<(i64, Option<Split>)> = (1..=10_000).map(|id| (id, None)).collect();
        let splits = assign_splits(&images, 7, ratios);
        let count = |s| splits.iter().filter(|x| **x == s).count() as f64 / 100.0;
        assert!((count(Split::Train) - 70.0).abs() < 2.0, "{}", count(Split::Train));
        assert!((count(Split::Val) - 20.0).abs() < 2.0, "{}", count(Split::Val));
        assert!((count(Split::Test) - 10.0).abs() < 2.0, "{}", count(Split::Test));
    }

    #[test]
    fn deterministic_and_seeded() {
        let ratios = SplitRatios::default();
        let ids: Vec<(i64, Option<Split>)> = (1..=50).map(|id| (id, None)).collect();
        assert_eq!(assign_splits(&ids, 1, ratios), assign_splits(&ids, 1, ratios));
        assert_ne!(assign_splits(&ids, 1, ratios), assign_splits(&ids, 2, ratios));
    }

    #[test]
    fn fixed_splits_win_and_both_splits_get_images() {
        let ratios = SplitRatios::default();
        // All fixed to train but one free image: it must become val.
        let images = [(1, Some(Split::Train)), (2, Some(Split::Train)), (3, None)];
        assert_eq!(
            assign_splits(&images, 0, ratios),
            [Split::Train, Split::Train, Split::Val]
        );
        // Two free images always end up one in each split.
        for seed in 0..20 {
            let splits = assign_splits(&[(10, None), (11, None)], seed, ratios);
            assert!(
                splits.contains(&Split::Train) && splits.contains(&Split::Val),
                "seed {seed}: {splits:?}"
            );
        }
        assert_eq!(assign_splits(&[(5, None)], 0, ratios), [split_of(5, 0, ratios)]);
        assert!(assign_splits(&[], 0, ratios).is_empty());
    }
}
