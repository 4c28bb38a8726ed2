//! Where GPU tests run their f16 cases: on an adapter with `shader-f16`, which CI's SwiftShader
//! lacks. The Vulkan driver named by `DISTILLERY_TEST_F16_VULKAN_ICD` (`cargo xtask test` names
//! Mesa's lavapipe) runs them; with none named, the machine's own adapter must have it.

use std::process::Command;

use anyhow::{anyhow, bail, ensure};
use models::gpu::{GpuDevice, Precision};

const F16_DRIVER: &str = "DISTILLERY_TEST_F16_VULKAN_ICD";

/// Runs the ignored test `child_test` of this test binary on the named driver and checks it
/// passed — the Vulkan loader reads its driver list once per process, so the driver needs a
/// process of its own, with `VK_ICD_FILENAMES` naming it alone. With no driver named, runs
/// `here` in this process.
pub fn run_f16_cases(child_test: &str, here: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let Some(driver) = std::env::var_os(F16_DRIVER) else {
        return here();
    };
    let child = Command::new(std::env::current_exe()?)
        .args([child_test, "--exact", "--ignored", "--nocapture"])
        .env("VK_ICD_FILENAMES", driver)
        .output()?;
    println!(
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    ensure!(child.status.success(), "the f16 cases failed: {}", child.status);
    // A filter that matched nothing would pass too.
    ensure!(
        String::from_utf8_lossy(&child.stdout).contains("1 passed"),
        "the f16 cases did not run"
    );
    Ok(())
}

/// This process's adapter with plans in f16; an error when it has no `shader-f16`.
pub fn f16_device() -> anyhow::Result<GpuDevice> {
    let device = GpuDevice::open_blocking().map_err(|e| anyhow!(e))?;
    if !device.has_f16() {
        bail!(
            "{} has no shader-f16: name a Vulkan driver that has it in {F16_DRIVER} (cargo xtask test names Mesa's lavapipe)",
            device.name
        );
    }
    device.with_precision(Precision::F16).map_err(|e| anyhow!(e))
}
