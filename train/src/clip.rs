//! Gradient clipping by the norm of all gradients together, as Ultralytics clips before every
//! optimizer step (`clip_grad_norm_(model.parameters(), max_norm=10.0)`). burn's own
//! `GradientClipping::Norm` clips each tensor by its own norm, which changes the direction of
//! the step; scaling every gradient by one factor keeps it.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// Ultralytics' limit on the gradients' norm.
pub const MAX_GRADIENT_NORM: f32 = 10.0;

/// The gradients' global L2 norm, and the gradients scaled by `max_norm / norm` when it is
/// larger than `max_norm` (torch's `max_norm / (norm + 1e-6)`), as they were otherwise.
pub fn clip_global_norm<M: Module>(module: &M, mut grads: GradientsParams, max_norm: f32) -> (GradientsParams, f32) {
    let mut squares = SumOfSquares {
        grads: &grads,
        sum: None,
    };
    module.visit(&mut squares);
    let norm = squares.sum.map_or(0.0, |s| s.into_scalar::<f32>().sqrt());
    if norm > max_norm {
        let mut scale = Scale {
            grads: &mut grads,
            factor: max_norm / (norm + 1e-6),
        };
        module.visit(&mut scale);
    }
    (grads, norm)
}

struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(sum) => sum + squares,
                None => squares,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.factor));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;

    /// A 2 → 1 linear layer whose weight gradient is `weight` and bias gradient `bias`.
    fn layer_with_gradients(weight: [f32; 2], bias: f32) -> (Linear, GradientsParams) {
        let device = Device::default();
        let layer = LinearConfig::new(2, 1).init(&device);
        let mut grads = GradientsParams::new();
        grads.register(
            layer.weight.id,
            Tensor::<2>::from_floats([[weight[0]], [weight[1]]], &device),
        );
        if let Some(b) = &layer.bias {
            grads.register(b.id, Tensor::<1>::from_floats([bias], &device));
        }
        (layer, grads)
    }

    fn values(grads: &GradientsParams, layer: &Linear) -> Vec<f32> {
        let mut out = grads
            .get::<2>(layer.weight.id)
            .map(|w| w.into_data().try_to_vec::<f32>().unwrap_or_default())
            .unwrap_or_default();
        if let Some(b) = layer.bias.as_ref().and_then(|b| grads.get::<1>(b.id)) {
            out.extend(b.into_data().try_to_vec::<f32>().unwrap_or_default());
        }
        out
    }

    #[test]
    fn scales_every_gradient_by_one_factor() {
        // (3, 4) and 12: the global norm is √(9 + 16 + 144) = 13, so everything is scaled by
        // 10/13. Clipping each tensor on its own would leave (3, 4) (norm 5) and make 12 → 10.
        let (layer, grads) = layer_with_gradients([3.0, 4.0], 12.0);
        let (clipped, norm) = clip_global_norm(&layer, grads, 10.0);
        assert!((norm - 13.0).abs() < 1e-5, "{norm}");
        let expected = [30.0 / 13.0, 40.0 / 13.0, 120.0 / 13.0];
        let got = values(&clipped, &layer);
        assert_eq!(got.len(), 3);
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn leaves_gradients_under_the_limit_alone() {
        let (layer, grads) = layer_with_gradients([3.0, 4.0], 0.0);
        let (kept, norm) = clip_global_norm(&layer, grads, 10.0);
        assert!((norm - 5.0).abs() < 1e-6, "{norm}");
        assert_eq!(values(&kept, &layer), vec![3.0, 4.0, 0.0]);
    }
}
