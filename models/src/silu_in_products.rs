//! Runs each SiLU that follows a convolution inside the convolution's matrix kernel.
//!
//! A YOLO detector follows nearly every convolution with a SiLU. tract runs it as a pass of its
//! own over the convolution's output, after the product has stored it: each value is written,
//! read back and written again, which at 640 px no longer happens in cache. tract fuses
//! activations into its products only through its fixed list of kernel operations, which has
//! no SiLU. But the kernel is ours (`wasm_gemm`): [`fuse`] hands such a product the kernel
//! variant that applies SiLU to each tile as it stores it, and takes the SiLU node out.
//!
//! Measured in headless Chromium (bench-browser, relaxed SIMD unless named; onnxruntime-web
//! 1.30 in the same runs as the anchor), this run against the one before it without the fusion:
//! one thread, yolov8n-320 69.6 against 77.3 ms (0.90×; 0.91× before), -640 278.3 against 297.7
//! (0.93×; 0.94×); two threads 43.1 against 43.2 (1.00×; 1.04×), 157.7 against 159.5 (0.99×;
//! 0.99×); the SIMD128 build, whose tract SiLU was slower, 73.6 (0.95× of onnxruntime-web; 1.01×
//! before) and 289.2 (0.97×; 1.02×). The SiLU's arithmetic stays — the products took 64.6 ms
//! where products and SiLUs took 66.4 + 4.7 — what goes is a pass over memory per activation.
//!
//! A SiLU is fused only where it is the product's one reader (and the product is no output of
//! the graph), so no other step sees the activated values in place of the raw ones; and only
//! where the product runs on `wasm_gemm`'s kernel, the variant's packings. A SiLU after anything
//! else (YOLO11's depthwise convolutions) stays tract's op.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
use tract_onnx::tract_core::ops::nn::Silu;

use crate::wasm_gemm;

/// Moves every SiLU of an optimised `model` that only reads a product on `wasm_gemm`'s kernel
/// into that product's kernel.
pub(crate) fn fuse(mut model: TypedModel) -> TractResult<TypedModel> {
    for id in 0..model.nodes().len() {
        let Some(product) = fusable_product(&model, id)? else {
            continue;
        };
        // The SiLU's readers now read the product, whose kernel applies it.
        let Some(patch) = TypedModelPatch::shunt_one_op(&model, model.node(id))? else {
            continue;
        };
        patch.apply(&mut model)?;
        if let Some(op) = model.node_mut(product).op_as_mut::<OptMatMul>() {
            op.mmm = op.mmm.iter().map(|_| wasm_gemm::with_silu()).collect();
        }
    }
    // Drops the SiLU nodes nothing reads any more.
    model.compact()?;
    Ok(model)
}

/// The product node whose SiLU node `id` is, if the SiLU can move into it.
fn fusable_product(model: &TypedModel, id: usize) -> TractResult<Option<usize>> {
    let node = model.node(id);
    let is_silu = node.op_as::<ElementWiseOp>().is_some_and(|op| op.0.is::<Silu>());
    if !is_silu || node.inputs.len() != 1 {
        return Ok(None);
    }
    let input = node.inputs[0];
    let producer = model.node(input.node);
    let only_reader = producer.outputs.len() == 1
        && producer.outputs[0].successors.len() == 1
        && !model.output_outlets()?.contains(&input);
    let on_our_kernel = producer
        .op_as::<OptMatMul>()
        .is_some_and(|op| op.mmm.iter().all(|mmm| wasm_gemm::is_this(&**mmm)));
    Ok((only_reader && on_our_kernel).then_some(input.node))
}
