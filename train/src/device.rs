//! Where the student trains. By default on the CPU, with burn's pure-Rust `flex` backend (no
//! native library, builds offline). With the crate's `libtorch` feature, the same network, loss
//! and loop run on PyTorch's C++ library (burn's `tch` backend): `Accelerator::Gpu` on a CUDA GPU,
//! and `Accelerator::Cpu` on libtorch's CPU kernels, which trained twice as fast as flex on this
//! project's 2-core machine (9.9 against 4.9 images/s at 320, `bench_train`).
//!
//! Why libtorch and not burn's own CUDA backend: every `burn-cuda` 0.22 build pulls
//! `tracel-llvm-bundler`, whose build script downloads LLVM, so it cannot build offline; and
//! burn's issue #4598 measured its CNN training far behind PyTorch. libtorch's kernels are
//! PyTorch's own (cuDNN convolutions). It is never the default: it needs libtorch at build and
//! run time (see the README's "Training on a GPU").

use std::fmt;

pub use burn::prelude::Device;

/// The kind of processor a training is asked to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accelerator {
    #[default]
    Cpu,
    Gpu,
}

impl Accelerator {
    /// `cpu` or `gpu`, as the command line spells them.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cpu" => Some(Self::Cpu),
            "gpu" => Some(Self::Gpu),
            _ => None,
        }
    }
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "training on a GPU needs a distillery built with the `libtorch` feature \
         (LIBTORCH_USE_PYTORCH=1 cargo build --release --features libtorch, with PyTorch installed)"
    )]
    NotBuilt,
    #[error("libtorch finds no CUDA GPU (a CUDA build of PyTorch and an NVIDIA driver are needed)")]
    NoCudaGpu,
}

/// The device `accelerator` trains on, or why there is none.
pub fn select(accelerator: Accelerator) -> Result<Device, DeviceError> {
    match accelerator {
        Accelerator::Cpu => Ok(cpu()),
        Accelerator::Gpu => gpu(),
    }
}

#[cfg(feature = "libtorch")]
#[allow(deprecated)] // burn 0.22 marks its tch backend deprecated; see the module's comment
fn cpu() -> Device {
    Device::libtorch()
}

#[cfg(not(feature = "libtorch"))]
fn cpu() -> Device {
    Device::flex()
}

#[cfg(feature = "libtorch")]
#[allow(deprecated)] // burn 0.22 marks its tch backend deprecated; see the module's comment
fn gpu() -> Result<Device, DeviceError> {
    if !tch::Cuda::is_available() {
        return Err(DeviceError::NoCudaGpu);
    }
    // cuDNN picks the fastest convolution algorithm per shape once: the input size is fixed.
    tch::Cuda::cudnn_set_benchmark(true);
    Ok(Device::libtorch_cuda(0))
}

#[cfg(not(feature = "libtorch"))]
fn gpu() -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt)
}

/// Words for logs and job messages: "CPU (burn flex)", "CUDA GPU (libtorch)".
pub fn describe(accelerator: Accelerator) -> &'static str {
    match accelerator {
        Accelerator::Cpu if cfg!(feature = "libtorch") => "CPU (libtorch)",
        Accelerator::Cpu => "CPU (burn flex)",
        Accelerator::Gpu => "CUDA GPU (libtorch)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_names_parse() {
        assert_eq!(Accelerator::parse("cpu"), Some(Accelerator::Cpu));
        assert_eq!(Accelerator::parse("gpu"), Some(Accelerator::Gpu));
        assert_eq!(Accelerator::parse("cuda"), None);
        assert_eq!(Accelerator::Gpu.to_string(), "gpu");
    }

    #[cfg(not(feature = "libtorch"))]
    #[test]
    fn a_gpu_without_the_feature_says_how_to_build_it() {
        let error = select(Accelerator::Gpu).err();
        assert_eq!(error, Some(DeviceError::NotBuilt));
        assert!(
            error
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("--features libtorch")
        );
    }
}
