//! What the tests of the browser builds' changes to tract's plan share: the plan they change,
//! and a check that a changed plan computes what tract's computes, to the bit.

use tract_onnx::prelude::*;

/// A reference graph's typed model, as `Detector::load` has it before optimisation.
pub(crate) fn reference_typed(name: &str) -> TractResult<TypedModel> {
    let path = crate::conformance::reference_models_dir().join(format!("{name}.onnx"));
    tract_onnx::onnx().model_for_path(path)?.into_typed()
}

/// tract's optimised plan of `typed` as the browser gets it: natively tract would take its
/// direct spatial convolution for wide stride-1 rows, which it never does on wasm.
pub(crate) fn optimized_as_in_browser(typed: TypedModel) -> TractResult<TypedModel> {
    let wasm_like = tract_onnx::tract_core::knobs::KnobScope::new([("TRACT_DISABLE_DIRECT_SPATIAL", "true")])?;
    wasm_like.enter(|| typed.into_optimized())
}

/// A `[1, 3, side, side]` image of values in [0, 1).
pub(crate) fn image(side: usize) -> Tensor {
    tract_ndarray::Array4::from_shape_fn((1, 3, side, side), |(_, c, y, x)| {
        ((c * 7 + y * 3 + x * 5) % 17) as f32 / 17.0
    })
    .into()
}

/// Runs both plans on `input` and fails unless their first outputs are the same bits.
pub(crate) fn assert_same_outputs(tracts: TypedModel, changed: TypedModel, input: Tensor) -> anyhow::Result<()> {
    let run = |model: TypedModel| -> anyhow::Result<Vec<f32>> {
        let outputs = model.into_runnable()?.run(tvec!(input.clone().into_tvalue()))?;
        Ok(outputs[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
    };
    let (expected, got) = (run(tracts)?, run(changed)?);
    assert_eq!(expected.len(), got.len());
    let differing = expected
        .iter()
        .zip(&got)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(differing, 0, "of {} outputs", expected.len());
    Ok(())
}
