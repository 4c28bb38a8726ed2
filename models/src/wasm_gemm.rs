//! A wasm SIMD128 matrix kernel for tract that fits in the engine's registers.
//!
//! Nearly all of a detector's time in the browser is convolutions, which tract runs as packed
//! matrix products. tract-linalg's wasm tier picks its 8×8 kernel for every product: sixteen
//! `v128` accumulators, plus the B columns and the broadcast A values, are more than the vector
//! registers V8 allocates on x86-64 (fifteen), so its inner loop spills on every step. This
//! kernel keeps a 4×8 tile in eight accumulators and broadcasts A straight from memory
//! (`v128.load32_splat`): even with LLVM hoisting all four broadcasts, fourteen values are live.
//!
//! Tiles measured in headless Chromium on whole yolov8n-320 runs (one build, kernels taking
//! turns): 4×8 109 ms, tract's 8×8 131 ms, 2×16 121 ms, 8×4 118 ms, 12×4 124 ms, 6×8 141 ms,
//! 5×8 159 ms, 4×12 143 ms; unrolling the k loop (×2, ×4) made each slower, as LLVM then
//! schedules more values live at once. With relaxed SIMD the loop's multiply + add becomes one
//! `f32x4.relaxed_madd` (13% off yolov8n-320 in a trial build): `cargo xtask build-web` builds
//! the worker a second time with `+relaxed-simd`, and the app starts that build where the
//! browser validates relaxed SIMD. With the fused multiply-add the tile stays 4×8: 5×8 and 6×8
//! (ten and twelve accumulators, room for which the fused step frees) measured 92 and 84 ms
//! against 72 ms on yolov8n-320 in one run, as YOLO's channel counts (multiples of 16) leave
//! their last tiles part empty.
//!
//! Where a one-thread relaxed-SIMD yolov8n-320 run goes (headless Chromium, one build with this
//! kernel's loop switched off for the second figure): of 80 ms, 58 are this loop, at about 64%
//! of what the core's 128-bit fused multiply-adds allow natively; 14 are tract's tile driver,
//! lazy im2col packing and stores; 8 are the other operators (SiLU, padding). Storing whole
//! vectors where the tile's columns are contiguous changed nothing measurable, and tract's eager
//! im2col made it a third (320) to a half (640) slower.
//!
//! It plugs into tract's own dispatch: the kernel is one more `MmmRoutine`, and a dispatch tier
//! above tract's wasm tier names it for every f32 product with more than one column. Everything
//! else — packing, edge tiles, fused bias / activation / store — is tract's, driven through the
//! same `FusedKerSpec` list the built-in kernels read. A second instance of the kernel
//! ([`with_silu`]) applies SiLU to each tile as it stores it, for the products
//! `silu_in_products` gives a SiLU. The in-browser conformance test against onnxruntime (e2e
//! `prelabel_in_browser`) runs through both.
#![allow(unsafe_code)] // a SIMD kernel reads tract's packed panels through raw pointers

use std::arch::wasm32::*;
use tract_linalg::isa::{Arch, IsaSet};
use tract_linalg::mmm::{DynKernel, FusedKerSpec, MatMatMul, Query, Suitable};
use tract_linalg::mmm_routines::MmmRoutine;
use tract_linalg::mmm_tiers::MmmTier;
use tract_linalg::pack::Packing;
use tract_onnx::prelude::DatumType;

/// Rows of the output tile.
const MR: usize = 4;
/// Vectors per tile row: four `f32` each.
const NV: usize = 2;
/// Columns of the output tile.
const NR: usize = 4 * NV;

/// The name dispatch knows the kernel by.
const NAME: &str = "distillery_wasm_f32_4x8";
/// The name of the same kernel applying SiLU to each tile as it stores it.
const SILU_NAME: &str = "distillery_wasm_f32_4x8_silu";

fn kernel(name: &'static str, run: unsafe fn(&[FusedKerSpec<f32>]) -> isize) -> DynKernel<MR, NR, f32> {
    let mut kernel = DynKernel::<MR, NR, f32>::new(name, run, f32::packing(MR), f32::packing(NR));
    kernel.arch = Some(Arch::Wasm32Simd128);
    kernel
}

inventory::submit! {
    MmmRoutine { make: || Box::new(kernel(NAME, run::<false>)) as Box<dyn MatMatMul> }
}

/// Whether `mmm` is this kernel (without the SiLU).
pub(crate) fn is_this(mmm: &dyn MatMatMul) -> bool {
    mmm.name() == NAME
}

/// This kernel with SiLU applied to every stored tile: the product's result, after all the
/// operations tract fused into it, goes through SiLU on its way out (`silu_in_products`). Its
/// packings are this kernel's, so a plan's packed operands stay valid for it.
pub(crate) fn with_silu() -> Box<dyn MatMatMul> {
    Box::new(kernel(SILU_NAME, run::<true>))
}

/// Every f32 matrix product with more than one column (convolutions) goes to this kernel;
/// matrix–vector products and other types are left to tract's tiers below.
fn preferred(_: &IsaSet, dt: DatumType, query: &Query, _: &[Suitable]) -> Option<&'static str> {
    (dt == DatumType::F32 && query.n != Some(1)).then_some(NAME)
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::Wasm32Simd128),
        // tract's own wasm tier is precedence 1: this one is asked first.
        precedence: 2,
        name: "distillery-wasm-registers",
        applies: |_| true,
        preferred,
    }
}

/// Keeps this module in the link. wasm-ld drops an object nothing references, and with it the
/// registrations above; `Detector::load` calls this before tract picks kernels.
pub fn link() {
    std::hint::black_box(run::<false> as unsafe fn(&[FusedKerSpec<f32>]) -> isize);
}

type Tile = [[v128; NV]; MR];

/// The kernel: runs tract's fused operation list over one `MR`×`NR` tile, with SiLU applied
/// at the store when `SILU`.
///
/// # Safety
/// Every pointer in `spec` must be what tract's matrix runner hands a kernel of this shape:
/// packed panels of `k`×`MR` and `k`×`NR` f32, row/column vectors of `MR`/`NR` values, and
/// tiles of `MR`×`NR` f32 at the given strides.
unsafe fn run<const SILU: bool>(spec: &[FusedKerSpec<f32>]) -> isize {
    let zero: Tile = [[f32x4_splat(0.0); NV]; MR];
    let mut acc = zero;
    for op in spec {
        // SAFETY (whole match): the pointers come from tract with the shapes documented above.
        unsafe {
            match *op {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => acc = zero,
                FusedKerSpec::LoadTile(_cols, rows) => {
                    let p = rows as *const v128;
                    for (r, row) in acc.iter_mut().enumerate() {
                        for (v, value) in row.iter_mut().enumerate() {
                            *value = v128_load(p.add(NV * r + v));
                        }
                    }
                }
                FusedKerSpec::ScalarMin(s) => each(&mut acc, |a| f32x4_min(f32x4_splat(s), a)),
                FusedKerSpec::ScalarMax(s) => each(&mut acc, |a| f32x4_max(f32x4_splat(s), a)),
                FusedKerSpec::ScalarAdd(s) => each(&mut acc, |a| f32x4_add(f32x4_splat(s), a)),
                FusedKerSpec::ScalarMul(s) => each(&mut acc, |a| f32x4_mul(f32x4_splat(s), a)),
                FusedKerSpec::ScalarSub(s) => each(&mut acc, |a| f32x4_sub(f32x4_splat(s), a)),
                FusedKerSpec::ScalarSubF(s) => each(&mut acc, |a| f32x4_sub(a, f32x4_splat(s))),
                FusedKerSpec::LeakyRelu(alpha) => each(&mut acc, |a| {
                    let negative_part = f32x4_mul(f32x4_splat(alpha), a);
                    v128_bitselect(a, negative_part, f32x4_gt(a, f32x4_splat(0.0)))
                }),
                FusedKerSpec::PerRowMin(row) => per_row(&mut acc, row, |v, a| f32x4_min(v, a)),
                FusedKerSpec::PerRowMax(row) => per_row(&mut acc, row, |v, a| f32x4_max(v, a)),
                FusedKerSpec::PerRowAdd(row) => per_row(&mut acc, row, |v, a| f32x4_add(v, a)),
                FusedKerSpec::PerRowMul(row) => per_row(&mut acc, row, |v, a| f32x4_mul(v, a)),
                FusedKerSpec::PerRowSub(row) => per_row(&mut acc, row, |v, a| f32x4_sub(v, a)),
                FusedKerSpec::PerRowSubF(row) => per_row(&mut acc, row, |v, a| f32x4_sub(a, v)),
                FusedKerSpec::PerColMin(col) => per_col(&mut acc, col, |v, a| f32x4_min(v, a)),
                FusedKerSpec::PerColMax(col) => per_col(&mut acc, col, |v, a| f32x4_max(v, a)),
                FusedKerSpec::PerColAdd(col) => per_col(&mut acc, col, |v, a| f32x4_add(v, a)),
                FusedKerSpec::PerColMul(col) => per_col(&mut acc, col, |v, a| f32x4_mul(v, a)),
                FusedKerSpec::PerColSub(col) => per_col(&mut acc, col, |v, a| f32x4_sub(v, a)),
                FusedKerSpec::PerColSubF(col) => per_col(&mut acc, col, |v, a| f32x4_sub(a, v)),
                // Quantised requantisation steps, met by f32 only as plain scalings (as in
                // tract's own f32 kernels).
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scale = tract_linalg::Scaler::from_fuse_params(shift, policy, mult).scale;
                    each(&mut acc, |a| f32x4_mul(f32x4_splat(scale), a))
                }
                FusedKerSpec::RoundingShiftRight(shift, _) => {
                    let scale = 2f32.powi(-(shift as i32));
                    each(&mut acc, |a| f32x4_mul(f32x4_splat(scale), a))
                }
                FusedKerSpec::ShiftLeft(shift) => {
                    let scale = 2f32.powi(shift as i32);
                    each(&mut acc, |a| f32x4_mul(f32x4_splat(scale), a))
                }
                FusedKerSpec::AddUnicast(tile) => {
                    for (r, row) in acc.iter_mut().enumerate() {
                        let at = |c: usize| {
                            *(tile
                                .ptr
                                .offset(r as isize * tile.row_byte_stride + c as isize * tile.col_byte_stride)
                                as *const f32)
                        };
                        for (v, value) in row.iter_mut().enumerate() {
                            let c = 4 * v;
                            *value = f32x4_add(*value, f32x4(at(c), at(c + 1), at(c + 2), at(c + 3)));
                        }
                    }
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let cols = cols as *const v128;
                    for (r, row) in acc.iter_mut().enumerate() {
                        let s = f32x4_splat(*rows.add(r));
                        for (v, value) in row.iter_mut().enumerate() {
                            *value = f32x4_add(*value, f32x4_mul(s, v128_load(cols.add(v))));
                        }
                    }
                }
                FusedKerSpec::Store(tile) => {
                    let stored = if SILU {
                        acc.map(|row| row.map(crate::wasm_silu::silu))
                    } else {
                        acc
                    };
                    for (r, row) in stored.iter().enumerate() {
                        let out = tile.ptr.offset(r as isize * tile.row_byte_stride);
                        let put =
                            |c: usize, value: f32| *(out.offset(c as isize * tile.col_byte_stride) as *mut f32) = value;
                        for (v, value) in row.iter().enumerate() {
                            put(4 * v, f32x4_extract_lane::<0>(*value));
                            put(4 * v + 1, f32x4_extract_lane::<1>(*value));
                            put(4 * v + 2, f32x4_extract_lane::<2>(*value));
                            put(4 * v + 3, f32x4_extract_lane::<3>(*value));
                        }
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, packing: _ } => add_mat_mul(&mut acc, k, pa, pb),
            }
        }
    }
    0
}

/// The hot loop: `acc += A·B` over `k` steps of packed panels (A `[k][MR]`, B `[k][NR]`).
/// Not unrolled: unrolling lets LLVM hoist the next step's loads and spill again.
#[inline(always)]
unsafe fn add_mat_mul(acc: &mut Tile, k: usize, pa: *const u8, pb: *const u8) {
    let a = pa as *const f32;
    let b = pb as *const v128;
    // A local copy, so the accumulators live in registers across the loop.
    let mut tile = *acc;
    for step in 0..k {
        // SAFETY: tract's packed panels hold `k` steps of `MR` and `NR` values.
        unsafe { add_step(&mut tile, a, b, step) };
    }
    *acc = tile;
}

#[inline(always)]
unsafe fn add_step(tile: &mut Tile, a: *const f32, b: *const v128, step: usize) {
    // SAFETY: tract's packed panels hold `k` steps of `MR` and `NR` values.
    unsafe {
        let b_step: [v128; NV] = std::array::from_fn(|v| v128_load(b.add(NV * step + v)));
        let a_step = a.add(MR * step);
        for (r, row) in tile.iter_mut().enumerate() {
            let s = v128_load32_splat(a_step.add(r) as *const u32);
            for (value, b) in row.iter_mut().zip(b_step) {
                *value = madd(s, b, *value);
            }
        }
    }
}

#[inline(always)]
fn each(acc: &mut Tile, f: impl Fn(v128) -> v128) {
    for v in acc.iter_mut().flatten() {
        *v = f(*v);
    }
}

/// Applies `f(row value, accumulator)` with one value per tile row.
#[inline(always)]
unsafe fn per_row(acc: &mut Tile, values: *const f32, f: impl Fn(v128, v128) -> v128) {
    for (r, row) in acc.iter_mut().enumerate() {
        // SAFETY: tract passes `MR` row values.
        let v = f32x4_splat(unsafe { *values.add(r) });
        for value in row.iter_mut() {
            *value = f(v, *value);
        }
    }
}

/// Applies `f(column values, accumulator)` with one value per tile column.
#[inline(always)]
unsafe fn per_col(acc: &mut Tile, values: *const f32, f: impl Fn(v128, v128) -> v128) {
    let p = values as *const v128;
    // SAFETY: tract passes `NR` column values.
    let cols: [v128; NV] = std::array::from_fn(|v| unsafe { v128_load(p.add(v)) });
    for row in acc.iter_mut() {
        for (value, col) in row.iter_mut().zip(cols) {
            *value = f(col, *value);
        }
    }
}

/// `acc + a·b`: one fused (or not, as the engine likes) `relaxed_madd` where the build has
/// relaxed SIMD, else a multiply and an add.
#[inline(always)]
pub(crate) fn madd(a: v128, b: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(acc, f32x4_mul(a, b))
    }
}
