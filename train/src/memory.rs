//! Will a training fit in memory? A Rust process cannot recover from a failed allocation — the
//! kernel kills it, and with it the server — so a training that would not fit is refused before
//! it starts, with the figures, instead of taking the studio down halfway through an epoch.
//!
//! The working set of one step grows with the images in a batch and the pixels of each: the
//! activations autodiff keeps for the backward pass. The constants bound from above the peak
//! resident memory measured with `bench_train` on the flex backend (16 images, one epoch):
//! 447 MB at batch 4 and 8 of 160², 1.29–1.32 GB at batch 4, 8 and 16 of 320² — this estimate
//! says 454 MB and 1.1–2.8 GB, so it refuses only what is well beyond the machine.

use std::path::Path;

/// Memory a training needs besides its images: the network, its average, optimizer moments,
/// gradients, the allocator's slack and the rest of the process.
const FIXED_BYTES: u64 = 300_000_000;
/// Memory per image of a batch per input pixel (activations kept for the backward pass).
const BYTES_PER_BATCH_PIXEL: u64 = 1_500;

/// Peak memory of training at `batch` images of `imgsz`² on the CPU, beyond the data set.
pub fn training_bytes(batch: usize, imgsz: u32) -> u64 {
    FIXED_BYTES + BYTES_PER_BATCH_PIXEL * batch as u64 * u64::from(imgsz) * u64::from(imgsz)
}

/// Memory this process may still take: the system's available memory, or less when a cgroup
/// (a container's limit) allows less. `None` where neither can be read.
pub fn available_bytes() -> Option<u64> {
    let system = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| mem_available(&info));
    let cgroup = cgroup_room(Path::new("/sys/fs/cgroup"));
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What a cgroup v2 limit leaves: `memory.max` − `memory.current`; `None` when unlimited.
fn cgroup_room(dir: &Path) -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max" when unlimited
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let info = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(mem_available(info), Some(12_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_cgroup_limit_leaves_what_is_not_used() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("distillery-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("memory.max"), "8589934592\n")?;
        std::fs::write(dir.join("memory.current"), "2147483648\n")?;
        assert_eq!(cgroup_room(&dir), Some(6 * 1024 * 1024 * 1024));
        std::fs::write(dir.join("memory.max"), "max\n")?;
        assert_eq!(cgroup_room(&dir), None);
        std::fs::remove_dir_all(&dir)
    }
}
