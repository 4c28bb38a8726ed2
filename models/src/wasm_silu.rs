//! SiLU (`x·sigmoid(x)`) for the browser's builds, with relaxed SIMD's fused multiply-add where
//! the build has it.
//!
//! Every convolution of a YOLO detector is followed by a SiLU: 13% of a one-thread yolov8n-320
//! run in the browser when tract ran them as passes of their own. tract-linalg's wasm SiLU is
//! written for plain SIMD128, 25 vector operations per four values; its relaxed-SIMD tier has a
//! sigmoid and a tanh but no SiLU. [`silu`] is the same rational approximation as tract's
//! sigmoid (the same coefficients, 14.5 clamp) evaluated with `wasm_gemm::madd`: 16 operations
//! with `f32x4.relaxed_madd`. Measured in headless Chromium as tract's `Silu` op (bench-browser's
//! per-operator profile, one thread): 9.3 → 4.6 ms per yolov8n-320 run, 37.2 → 18.4 ms at 640.
//!
//! Most SiLUs now run inside the matrix kernel that makes their input (`silu_in_products`), on
//! every build. The rest (YOLO11's, after depthwise convolutions) stay tract's op: in the
//! relaxed-SIMD builds this module registers [`silu`] in tract-linalg's routine registry, ranked
//! above the SIMD128 kernel by the instruction set it needs, so that op picks it. The
//! in-browser conformance test (e2e `prelabel_in_browser`) runs every reference graph through
//! both against onnxruntime.
#![allow(unsafe_code)] // SIMD loads and stores through tract's aligned buffer

use std::arch::wasm32::*;

use crate::wasm_gemm::madd;

#[cfg(target_feature = "relaxed-simd")]
pub use registered::link;

/// Where the sigmoid's argument is clamped: tract's relaxed sigmoid's bound, low enough that the
/// rational function's cancellation leaves the sigmoid inside (0, 1) with or without fusion.
const CLAMP: f32 = 14.5;
/// Odd numerator coefficients, x¹³ down to x¹ (tract's `ssigmoid`, digits as published).
#[allow(clippy::excessive_precision)]
const NUMERATOR: [f32; 7] = [
    -4.433153405e-18,
    1.169974371e-14,
    -1.875289645e-11,
    4.257889523e-8,
    0.00004811817576,
    0.008163842030,
    0.2499999971,
];
/// Even denominator coefficients, x⁶ down to x⁰.
#[allow(clippy::excessive_precision)]
const DENOMINATOR: [f32; 4] = [3.922935744e-6, 0.001524872358, 0.1159886749, 1.0];

/// SiLU of four values: the rational sigmoid above, with `wasm_gemm::madd` (fused where the
/// build has relaxed SIMD). The matrix kernel's SiLU epilogue (`silu_in_products`) runs it too.
#[inline(always)]
pub(crate) fn silu(v: v128) -> v128 {
    let low = f32x4_splat(-CLAMP);
    let x = f32x4_min(f32x4_splat(CLAMP), f32x4_max(low, v));
    let x2 = f32x4_mul(x, x);
    let numerator = (NUMERATOR[1..].iter()).fold(f32x4_splat(NUMERATOR[0]), |acc, &c| madd(x2, acc, f32x4_splat(c)));
    let denominator =
        (DENOMINATOR[1..].iter()).fold(f32x4_splat(DENOMINATOR[0]), |acc, &c| madd(x2, acc, f32x4_splat(c)));
    let sigmoid = f32x4_add(f32x4_div(f32x4_mul(numerator, x), denominator), f32x4_splat(0.5));
    // Below the clamp the factor stays at -14.5 too, so a very negative input gives
    // -14.5·sigmoid(-14.5) ≈ -7e-6 (SiLU's limit is 0), not x times a constant.
    f32x4_mul(f32x4_max(low, v), sigmoid)
}

/// The element-wise kernel tract's `Silu` op picks, on builds with relaxed SIMD.
#[cfg(target_feature = "relaxed-simd")]
mod registered {
    use super::*;
    use tract_linalg::element_wise::ElementWiseKer;
    use tract_linalg::isa::{Arch, Isa, IsaReq};
    use tract_linalg::routines::{Func, Routine, RoutineFactory, factory_of};

    /// The name tract's registry knows the kernel by.
    pub const NAME: &str = "distillery_wasm_relaxed_silu";

    #[derive(Clone, Debug)]
    struct WasmSilu4Relaxed;

    impl ElementWiseKer<f32> for WasmSilu4Relaxed {
        fn name() -> &'static str {
            NAME
        }

        fn alignment_items() -> usize {
            4
        }

        fn nr() -> usize {
            4
        }

        fn run(buf: &mut [f32], _: ()) {
            // tract hands whole, 16-byte aligned vectors (`nr`, `alignment_items`).
            debug_assert!(buf.len().is_multiple_of(4) && (buf.as_ptr() as usize).is_multiple_of(16));
            for chunk in buf.chunks_exact_mut(4) {
                let p = chunk.as_mut_ptr() as *mut v128;
                // SAFETY: `chunk` is four aligned f32.
                unsafe { v128_store(p, silu(v128_load(p))) };
            }
        }
    }

    inventory::submit! {
        Routine {
            func: Func::Silu,
            arch: Some(Arch::Wasm32Simd128),
            // Needing relaxed SIMD ranks it above tract's SIMD128 SiLU, on builds that have it.
            isa: IsaReq::ANY.needing(&[Isa::Wasm32RelaxedSimd]),
            boost: 0,
            round_trip: false,
            factory: RoutineFactory::F32(factory_of::<WasmSilu4Relaxed, f32, ()>),
        }
    }

    /// Keeps this module in the link: wasm-ld drops an object nothing references, and with it the
    /// registration above; `Detector::load` calls this before tract picks kernels.
    pub fn link() {
        std::hint::black_box(<WasmSilu4Relaxed as ElementWiseKer<f32>>::run as fn(&mut [f32], ()));
    }
}
