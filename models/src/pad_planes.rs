//! Pads a convolution's input a channel plane at a time, the planes shared over the pool.
//!
//! tract zero-pads the input of each padded convolution (34 in yolov8n) as a step of its own:
//! the whole padded tensor is filled, then the input assigned into it, on one thread whatever the
//! thread count. [`pad_planes`] swaps, after optimisation, each such `Pad` of an f32 tensor
//! (zeros, last two axes only) for [`PlanePad`], which writes each plane of the output in one
//! pass — zero rows, then each row's zeros and copy — with the planes split over rayon's pool in
//! the threaded build (one after another in the one-thread builds). The values are the same as
//! tract's: the tests below hold plans with the swap to tract's own, bit for bit.
//!
//! Measured in headless Chromium (bench-browser's per-operator profile, relaxed-SIMD builds;
//! whole runs against onnxruntime-web 1.30 in the same run as the anchor):
//! - 2 threads, swapped in the threaded build only, against the run before: the pads took 1.0 ms
//!   of a yolov8n-320 run (tract's 1.9) and 3.1 at 640 (9.9); the runs 46.1 against 47.7 ms
//!   (0.97×; 1.00× before) and 167.1 against 171.8 (0.97×; 0.99×).
//! - 1 thread, swapped in every build, against that run: 1.4 ms at 320 (tract's 1.9), 5.9 at
//!   640 (8.3); the runs 0.90× and 0.90× of onnxruntime-web (0.91×, 0.95×). Unlike the one-pass
//!   pad `im2col_panels` records as no faster, this one leaves the output unfilled until each
//!   value is written: the fill was half the memory traffic.
#![allow(unsafe_code)] // the output starts uninitialised; every value is written before it is read

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};

/// Swaps every `Pad` of an optimised `model` that pads an f32 tensor with zeros along its last
/// two axes only for [`PlanePad`]; other pads stay tract's.
pub(crate) fn pad_planes(mut model: TypedModel) -> TractResult<TypedModel> {
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(pad) = node.op_as::<Pad>() else {
            continue;
        };
        if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() {
            continue;
        }
        if let Some(op) = PlanePad::replacing(pad) {
            model.node_mut(id).op = Box::new(op);
        }
    }
    Ok(model)
}

/// Zero padding of the last two axes (rows, then columns: before, after), a plane at a time.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct PlanePad {
    rows: (usize, usize),
    cols: (usize, usize),
}

impl PlanePad {
    /// The same padding as `pad`, if it is zeros along the last two axes only.
    fn replacing(pad: &Pad) -> Option<Self> {
        let PadMode::Constant(value) = &pad.mode else {
            return None;
        };
        // +0.0 only: a -0.0 constant would pad with -0.0.
        let zeros = value.cast_to_scalar::<f32>().is_ok_and(|v| v.to_bits() == 0);
        let [outer @ .., rows, cols] = pad.pads.as_slice() else {
            return None;
        };
        (zeros && outer.iter().all(|&p| p == (0, 0))).then_some(Self {
            rows: *rows,
            cols: *cols,
        })
    }

    /// Writes the padded `plane` (`width` values a row) into `out` (`out_width` a row).
    fn pad_plane(&self, plane: &[f32], width: usize, out: &mut [f32], out_width: usize) {
        let (top, _) = self.rows;
        let (left, _) = self.cols;
        let (above, rest) = out.split_at_mut(top * out_width);
        let (middle, below) = rest.split_at_mut(plane.len() / width * out_width);
        above.fill(0.0);
        for (row, from) in middle.chunks_exact_mut(out_width).zip(plane.chunks_exact(width)) {
            row[..left].fill(0.0);
            row[left..left + width].copy_from_slice(from);
            row[left + width..].fill(0.0);
        }
        below.fill(0.0);
    }
}

impl Op for PlanePad {
    fn name(&self) -> StaticName {
        "PlanePad".into()
    }

    op_as_typed_op!();
}

impl EvalOp for PlanePad {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[ref outer @ .., height, width] = input.shape() else {
            bail!("PlanePad pads two axes, its input has {}", input.rank());
        };
        let (out_height, out_width) = (height + self.rows.0 + self.rows.1, width + self.cols.0 + self.cols.1);
        let shape: TVec<usize> = outer.iter().copied().chain([out_height, out_width]).collect();
        if height * width == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&shape)?.into_tvalue()));
        }
        // SAFETY: an f32 has no invalid bit patterns, and every value is written below (each
        // plane row by row, padding included) before the tensor is handed on.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        {
            let input = input.try_as_plain_ram()?;
            let planes = input.as_slice::<f32>()?;
            let mut output = output.try_as_plain_ram_mut()?;
            let out_planes = output.as_slice_mut::<f32>()?;
            let (plane, out_plane) = (height * width, out_height * out_width);
            let pad = |(out, plane): (&mut [f32], &[f32])| self.pad_plane(plane, width, out, out_width);
            #[cfg(feature = "threads")]
            {
                use rayon::prelude::*;
                (out_planes.par_chunks_exact_mut(out_plane))
                    .zip(planes.par_chunks_exact(plane))
                    .for_each(pad);
            }
            #[cfg(not(feature = "threads"))]
            (out_planes.chunks_exact_mut(out_plane))
                .zip(planes.chunks_exact(plane))
                .for_each(pad);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for PlanePad {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut fact = inputs[0].without_value();
        let rank = fact.rank();
        ensure!(rank >= 2, "PlanePad pads two axes, its input has {rank}");
        for (axis, (before, after)) in [(rank - 2, self.rows), (rank - 1, self.cols)] {
            fact.shape.set(axis, fact.shape[axis].clone() + before + after);
        }
        Ok(tvec!(fact))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan_swaps::{assert_same_outputs, image, optimized_as_in_browser, reference_typed};

    /// The swapped plan computes what tract's own plan computes, to the bit, with every padded
    /// convolution of yolov8n padding its input through [`PlanePad`].
    #[test]
    fn planes_padded_one_at_a_time_give_tracts_results() -> anyhow::Result<()> {
        let tracts = optimized_as_in_browser(reference_typed("yolov8n-320-random")?)?;
        let ours = pad_planes(tracts.clone())?;
        let count = |model: &TypedModel, name: &str| model.nodes().iter().filter(|n| n.op().name() == name).count();
        assert!(count(&tracts, "Pad") > 0);
        assert_eq!(count(&ours, "PlanePad"), count(&tracts, "Pad"));
        assert_eq!(count(&ours, "Pad"), 0);
        assert_same_outputs(tracts, ours, image(320))
    }

    /// Uneven padding (none above, three on the right…) lands where tract's puts it: yolov8n
    /// pads every side alike, so the test above would not see a mix-up of sides.
    #[test]
    fn uneven_padding_gives_tracts_values() -> anyhow::Result<()> {
        let mut tracts = TypedModel::default();
        let input = tracts.add_source("input", f32::fact([2, 3, 4, 5]))?;
        let pads = vec![(0, 0), (0, 0), (0, 2), (1, 3)];
        let pad = Pad::new(pads, PadMode::Constant(Arc::new(0f32.into())));
        let padded = tracts.wire_node("pad", pad, &[input])?;
        tracts.select_output_outlets(&padded)?;
        let ours = pad_planes(tracts.clone())?;
        assert!(ours.nodes().iter().any(|n| n.op_is::<PlanePad>()));
        let input =
            tract_ndarray::Array4::from_shape_fn((2, 3, 4, 5), |(n, c, y, x)| (1 + n * 60 + c * 20 + y * 5 + x) as f32);
        assert_same_outputs(tracts, ours, input.into())
    }
}
