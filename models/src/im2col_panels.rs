//! Packs a convolution's im2col panels a row at a time where tract gathers them a value at a time.
//!
//! tract runs a large convolution as a matrix product whose right-hand side is the image laid out
//! as im2col columns, packed lazily: one panel of `r` output pixels at a time, each of the panel's
//! `k` rows (input channel × kernel tap) gathered value by value through a table of offsets. Where
//! the panel's pixels are neighbours on one output row of a stride-1 convolution, each row of the
//! panel is `r` neighbouring input values: one copy. Where the stride is 2, it is every other of
//! `2r` neighbours: on wasm, four vector loads and two shuffles. Other panels (those wrapping onto
//! the next output row, other strides) are gathered as tract does.
//!
//! Measured in headless Chromium (bench-browser, one relaxed-SIMD build run with and without the
//! swap in alternating rounds, three runs, one thread): yolov8n-640 283–288 ms against 292–302
//! (3–5% less), yolov8n-320 71.5–74.7 against 73.5–75.0 (0.4–3%). Only the browser's builds
//! swap: natively tract takes most of these convolutions on other paths, and it was not measured.
//!
//! The panels are the same bytes tract's would be, so the product and its result do not change;
//! the test below holds the two plans to equal outputs. [`pack_rows`] swaps tract's `LazyIm2col`
//! node, after optimisation, for [`Im2colRows`] where the convolution is one that this module can
//! address (2-D, channels first, f32, one group); the rest stays tract's.
//!
//! The panels read the input as tract's `Pad` node left it: padding is a whole copy of the
//! tensor per padded convolution (34 in yolov8n; about 2 ms of a yolov8n-320 run, on one thread
//! whatever the thread count, until `pad_planes` wrote it in one pass, split over the threaded
//! build's pool). Two ways around it were measured as above, each in one run against this
//! module as it is (the variant's figure first), and neither paid, so neither is here:
//! - Reading the unpadded input and writing the padding's zeros into the panels, for every
//!   padded convolution, with the rows of border panels that read padding checked value by
//!   value: 75.7 against 73.4 ms at 320, 304.9 against 302.8 at 640. With those rows copied as
//!   one stretch where the panel is on one output row, and only where the rows left to check
//!   were fewer than the padded tensor's values: 75.2 against 71.5, 289.5 against 278.7. At
//!   20×20 and 10×10 nearly every panel touches the border, and its checks cost more than the
//!   copy they save.
//! - A `Pad` that writes each row into place instead of tract's ndarray assignment: 70.2 against
//!   71.4 and 276.8 against 274.6 (zeroed buffer, then the rows), 71.8 against 71.1 and 293.5
//!   against 290.8 (one pass) — noise. That pad alone still took 1.6–2.0 ms at 320: the time is
//!   the new tensor's memory traffic, not tract's loop. (`pad_planes` later halved that traffic,
//!   leaving the output unfilled until it writes each value.)
//!
//! Nor did Winograd F(2×2, 3×3) in place of im2col for yolov8n's 32 3×3 stride-1 convolutions
//! (about two thirds of its multiply-adds): two tract ops for the input and output transforms
//! around a batched product of 16 planes per convolution, held to tract's outputs within 1e-5 of
//! the largest. Measured against onnxruntime-web in one run (this module's builds gave
//! 0.88–0.95× on one thread in earlier runs): 68.1 against 75.1 ms at 320 (0.91×), 282.8 against
//! 287.3 at 640 (0.98×), and slower on two threads (1.17×, 1.13×). tract's products fell to 53 ms
//! at 320 on one thread (60–66 without in earlier runs; 51.5 with the 24 below against 56.3
//! without, back to back), far less than 2.25× fewer multiply-adds would give: with
//! `k` only the input channels, and the transformed input written, packed and read again through
//! memory, each product runs well below im2col's rate; the transforms and the extra packing took
//! most of what was left. Taking only the 24 over 64 channels or more, measured in back-to-back
//! runs against this module as it is: 64.7 against 65.2 ms at 320 and 261.8 against 261.5 at 640
//! on one thread (noise), 43.5 against 40.9 and 155.5 against 149.1 on two. To pay, the
//! transforms would have to work a block of tiles at a time, straight into packed panels, with
//! the product and the output transform while the block is in cache.
#![allow(unsafe_code)] // reads the input and writes tract's panel buffer through raw pointers

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::matmul::pack::DynPackedExoticFact;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::tract_linalg::WeightType;
use tract_onnx::tract_core::tract_linalg::mmm::{EagerPackedInput, MMMInputFormat, MMMInputValue, PackedMatrixStorage};
use tract_onnx::tract_core::tract_linalg::pack::PackedFormat;

/// What tract names the lazy im2col node it wires in front of a convolution's matrix product.
const LAZY_SUFFIX: &str = ".lazyIm2col";

/// The kernel geometry of each 2-D, channels-first, single-group f32 convolution of `model`, by
/// node name: what [`pack_rows`] needs after optimisation, when the convolutions are gone.
pub(crate) fn conv_geometries(model: &TypedModel) -> HashMap<String, Geometry> {
    model
        .nodes()
        .iter()
        .filter_map(|node| {
            let conv = node.op_as::<Conv>()?;
            let spec = &conv.pool_spec;
            let input = model.outlet_fact(node.inputs[0]).ok()?;
            let plain = conv.group == 1
                && conv.q_params.is_none()
                && input.datum_type == f32::datum_type()
                && spec.data_format == DataFormat::NCHW
                && spec.kernel_shape.len() == 2;
            let pair = |v: &Option<TVec<usize>>| v.as_ref().map_or([1, 1], |v| [v[0], v[1]]);
            plain.then(|| {
                let geometry = Geometry {
                    kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
                    strides: pair(&spec.strides),
                    dilations: pair(&spec.dilations),
                };
                (node.name.clone(), geometry)
            })
        })
        .collect()
}

/// A convolution's kernel size, strides and dilations (height, width).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
}

/// Swaps every lazy im2col node of an optimised `model` whose convolution is in `geometries`
/// for [`Im2colRows`]. A node whose shapes do not add up to its convolution is left to tract.
pub(crate) fn pack_rows(mut model: TypedModel, geometries: &HashMap<String, Geometry>) -> TractResult<TypedModel> {
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(geometry) = node
            .name
            .strip_suffix(LAZY_SUFFIX)
            .and_then(|conv| geometries.get(conv))
        else {
            continue;
        };
        let input = model.outlet_fact(node.inputs[0])?;
        let output = &node.outputs[0].fact;
        let Some(packed) = output
            .exotic_fact()
            .and_then(|f| f.downcast_ref::<DynPackedExoticFact>())
        else {
            continue;
        };
        let (Some(packer), Some(shape)) = (
            packed.packers[0].downcast_ref::<PackedFormat>(),
            input.shape.as_concrete(),
        ) else {
            continue;
        };
        let (Ok(k), Ok(mn)) = (packed.k.to_usize(), packed.mn.to_usize()) else {
            continue;
        };
        if let Some(params) = Im2colParams::new(packer.clone(), shape, *geometry, k, mn) {
            model.node_mut(id).op = Box::new(Im2colRows {
                params: Arc::new(params),
            });
        }
    }
    Ok(model)
}

/// How many of `model`'s convolutions [`pack_rows`] took.
pub(crate) fn count(model: &TypedModel) -> usize {
    model.nodes().iter().filter(|node| node.op_is::<Im2colRows>()).count()
}

/// How a panel's rows are read from the input.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Panel {
    /// Its pixels are `r` neighbours: each row is one copy.
    Run,
    /// Its pixels are every other of `2r` neighbours (stride 2).
    EveryOther,
    /// Anything else: value by value.
    Gather,
}

/// One convolution's im2col, as offsets into its (already padded) input.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Im2colParams {
    packer: PackedFormat,
    /// Where each output pixel's window starts, in elements.
    pixel_offsets: Vec<isize>,
    /// Where each (input channel, kernel tap) is from a window's start, in elements.
    k_offsets: Vec<isize>,
    panels: Vec<Panel>,
}

impl Im2colParams {
    /// The im2col of a valid (padding already applied) convolution over `input` (`[1, C, H, W]` or `[C, H, W]`),
    /// if its shapes give tract's `k` and `mn`.
    fn new(packer: PackedFormat, input: &[usize], geometry: Geometry, k: usize, mn: usize) -> Option<Self> {
        // Optimisation drops the batch axis of some convolutions.
        let (&[1, channels, height, width] | &[channels, height, width]) = input else {
            return None;
        };
        let Geometry {
            kernel: [kh, kw],
            strides: [sh, sw],
            dilations: [dh, dw],
        } = geometry;
        let span = |size: usize, kernel: usize, dilation: usize, stride: usize| {
            size.checked_sub(dilation * (kernel - 1) + 1)
                .map(|rest| rest / stride + 1)
        };
        let (oh, ow) = (span(height, kh, dh, sh)?, span(width, kw, dw, sw)?);
        if packer.dt != f32::datum_type() || channels * kh * kw != k || oh * ow != mn {
            return None;
        }
        let pixel_offsets: Vec<isize> = (0..oh)
            .flat_map(|y| (0..ow).map(move |x| (y * sh * width + x * sw) as isize))
            .collect();
        let k_offsets = (0..channels)
            .flat_map(|c| {
                (0..kh).flat_map(move |ky| (0..kw).map(move |kx| ((c * height + ky * dh) * width + kx * dw) as isize))
            })
            .collect();
        let r = packer.r;
        let panels = pixel_offsets
            .chunks(r)
            .map(|pixels| {
                let steps = |step: isize| pixels.len() == r && pixels.windows(2).all(|p| p[1] - p[0] == step);
                if steps(1) {
                    Panel::Run
                } else if steps(2) {
                    Panel::EveryOther
                } else {
                    Panel::Gather
                }
            })
            .collect();
        Some(Im2colParams {
            packer,
            pixel_offsets,
            k_offsets,
            panels,
        })
    }
}

impl fmt::Display for Im2colParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Im2colRows")
    }
}

impl ExoticFact for Im2colParams {
    fn buffer_sizes(&self) -> TVec<TDim> {
        tvec!(MMMInputFormat::mem_size(
            self,
            self.k_offsets.len().to_dim(),
            self.pixel_offsets.len().to_dim()
        ))
    }
}

/// Packed lazily, like tract's: only panels are ever materialised.
impl MMMInputFormat for Im2colParams {
    fn prepare_tensor(&self, _: &Tensor, _: usize, _: usize) -> TractResult<Tensor> {
        bail!("im2col rows are packed from the convolution's input, not from a tensor")
    }

    fn prepare_one_view(&self, _: &TensorView, _: usize, _: usize) -> TractResult<Box<dyn MMMInputValue>> {
        bail!("im2col rows are packed from the convolution's input, not from a tensor")
    }

    fn precursor(&self) -> WeightType {
        self.packer.precursor()
    }

    fn r(&self) -> usize {
        self.packer.r
    }

    fn k_alignment(&self) -> usize {
        1
    }

    fn mem_size(&self, k: TDim, mn: TDim) -> TDim {
        k * mn * self.packer.dt.size_of()
    }

    fn extract_at_mn_f16(&self, _: &EagerPackedInput, _: usize, _: &mut [f16]) -> TractResult<()> {
        bail!("im2col rows are never packed eagerly")
    }

    fn extract_at_mn_f32(&self, _: &EagerPackedInput, _: usize, _: &mut [f32]) -> TractResult<()> {
        bail!("im2col rows are never packed eagerly")
    }
}

/// The operator that stands where tract's `LazyIm2col` stood: hands the matrix product its
/// input, to be packed a panel at a time.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct Im2colRows {
    params: Arc<Im2colParams>,
}

impl Op for Im2colRows {
    fn name(&self) -> StaticName {
        "Im2colRows".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Im2colRows {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let value: Box<dyn MMMInputValue> = Box::new(Im2colInput {
            input,
            params: self.params.clone(),
        });
        let packed = PackedMatrixStorage::new_batched(&[1, 1], tvec!(value)).into_tensor(f32::datum_type());
        Ok(tvec!(packed.into_tvalue()))
    }
}

impl TypedOp for Im2colRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let packed = DynPackedExoticFact {
            k: self.params.k_offsets.len().to_dim(),
            mn: self.params.pixel_offsets.len().to_dim(),
            packers: vec![Box::new(self.params.packer.clone())],
        };
        Ok(tvec!(inputs[0].datum_type.fact([1, 1]).with_exotic_fact(packed)))
    }

    as_op!();
}

/// One run's input to one convolution's matrix product.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Im2colInput {
    input: TValue,
    params: Arc<Im2colParams>,
}

impl std::hash::Hash for Im2colInput {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.input.as_bytes(), &self.params).hash(state);
    }
}

impl fmt::Display for Im2colInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl MMMInputValue for Im2colInput {
    fn format(&self) -> &dyn MMMInputFormat {
        &*self.params
    }

    fn scratch_panel_buffer_layout(&self) -> Option<std::alloc::Layout> {
        Some(self.params.packer.single_panel_layout(self.k(), size_of::<f32>()))
    }

    fn panel_bytes(&self, i: usize, buffer: Option<*mut u8>) -> TractResult<*const u8> {
        let buffer = buffer.context("im2col rows are packed into the product's scratch buffer")?;
        let params = &*self.params;
        let r = params.packer.r;
        let pixels = &params.pixel_offsets[i * r..((i + 1) * r).min(self.mn())];
        let input = self.input.try_as_plain_ram()?.as_slice::<f32>()?;
        // SAFETY: the layout tract allocated `buffer` with (above) holds `k · r` values; every
        // offset was computed from the input's shape, so it stays inside `input`.
        unsafe {
            let panel = std::slice::from_raw_parts_mut(buffer as *mut f32, self.k() * r);
            match params.panels[i] {
                Panel::Run => copy_runs(input, &params.k_offsets, pixels[0], panel, r),
                Panel::EveryOther => every_other(input, &params.k_offsets, pixels[0], panel, r),
                Panel::Gather => gather(input, &params.k_offsets, pixels, panel, r),
            }
        }
        Ok(buffer)
    }

    fn k(&self) -> usize {
        self.params.k_offsets.len()
    }

    fn mn(&self) -> usize {
        self.params.pixel_offsets.len()
    }

    fn exotic_fact(&self) -> &dyn ExoticFact {
        &*self.params
    }

    fn extract_at_mn_f16(&self, _: usize, _: &mut [f16]) -> TractResult<()> {
        bail!("im2col rows are read by panels only")
    }

    fn extract_at_mn_f32(&self, _: usize, _: &mut [f32]) -> TractResult<()> {
        bail!("im2col rows are read by panels only")
    }
}

/// Each row of the panel is the `r` values from `start` on.
unsafe fn copy_runs(input: &[f32], k_offsets: &[isize], start: isize, panel: &mut [f32], r: usize) {
    // A copy of a length known here is a few vector moves; of any other, a call to `memcpy`:
    // inlined with a literal 8 (the browser kernel's panel width), the rows are copied the first way.
    #[inline(always)]
    unsafe fn rows(input: &[f32], k_offsets: &[isize], start: isize, panel: &mut [f32], r: usize) {
        for (row, &k) in panel.chunks_exact_mut(r).zip(k_offsets) {
            let from = (start + k) as usize;
            row.copy_from_slice(unsafe { input.get_unchecked(from..from + r) });
        }
    }
    unsafe {
        match r {
            8 => rows(input, k_offsets, start, panel, 8),
            _ => rows(input, k_offsets, start, panel, r),
        }
    }
}

/// Each row of the panel is every other value of the `2r - 1` from `start` on.
unsafe fn every_other(input: &[f32], k_offsets: &[isize], start: isize, panel: &mut [f32], r: usize) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if r == 8 {
        return unsafe { every_other_8(input, k_offsets, start, panel) };
    }
    for (row, &k) in panel.chunks_exact_mut(r).zip(k_offsets) {
        let from = (start + k) as usize;
        let values = unsafe { input.get_unchecked(from..from + 2 * r - 1) };
        for (to, from) in row.iter_mut().zip(values.iter().step_by(2)) {
            *to = *from;
        }
    }
}

/// [`every_other`] for eight-wide panels: four loads, two shuffles and two stores a row. The
/// fourth load starts at value 11, not 12, so that it ends on the last value the row needs.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn every_other_8(input: &[f32], k_offsets: &[isize], start: isize, panel: &mut [f32]) {
    use std::arch::wasm32::*;
    for (row, &k) in panel.chunks_exact_mut(8).zip(k_offsets) {
        let from = (start + k) as usize;
        let values = unsafe { input.get_unchecked(from..from + 15) }.as_ptr();
        let to = row.as_mut_ptr() as *mut v128;
        // SAFETY: each load reads four of the fifteen values above; each store, four of the row's eight.
        unsafe {
            let load = |at: usize| v128_load(values.add(at) as *const v128);
            let (a, b, c, d) = (load(0), load(4), load(8), load(11));
            v128_store(to, i32x4_shuffle::<0, 2, 4, 6>(a, b));
            v128_store(to.add(1), i32x4_shuffle::<0, 2, 5, 7>(c, d));
        }
    }
}

/// Any panel: value by value; a last, narrower panel leaves its missing columns at zero.
unsafe fn gather(input: &[f32], k_offsets: &[isize], pixels: &[isize], panel: &mut [f32], r: usize) {
    for (row, &k) in panel.chunks_exact_mut(r).zip(k_offsets) {
        for (to, &pixel) in row.iter_mut().zip(pixels) {
            *to = unsafe { *input.get_unchecked((pixel + k) as usize) };
        }
        row[pixels.len()..].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan_swaps::{assert_same_outputs, image, optimized_as_in_browser, reference_typed};

    /// The swapped plan computes what tract's own plan computes, to the bit: the panels hold the
    /// same values in the same places. yolov8n's convolutions give every kind of panel.
    #[test]
    fn panels_packed_by_rows_give_tracts_results() -> anyhow::Result<()> {
        let typed = reference_typed("yolov8n-320-random")?;
        let geometries = conv_geometries(&typed);
        let tracts = optimized_as_in_browser(typed)?;
        let ours = pack_rows(tracts.clone(), &geometries)?;

        let mut kinds = HashMap::<Panel, usize>::new();
        for node in ours.nodes() {
            if let Some(op) = node.op_as::<Im2colRows>() {
                for panel in &op.params.panels {
                    *kinds.entry(*panel).or_default() += 1;
                }
            }
        }
        for kind in [Panel::Run, Panel::EveryOther, Panel::Gather] {
            assert!(kinds.contains_key(&kind), "no {kind:?} panel: {kinds:?}");
        }
        assert_same_outputs(tracts, ours, image(320))
    }
}
