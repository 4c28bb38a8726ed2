//! Exponential moving average of the weights (Ultralytics' `ModelEMA`): what is validated,
//! kept and exported, because the average of the last steps' weights detects better than the
//! last step's. The decay ramps up, `decay · (1 − e^(−updates / tau))`, so the first updates
//! follow the model closely rather than averaging in the random start.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::yolo::Yolo;

/// The averaged network and how many updates it has seen.
#[derive(Debug, Clone)]
pub struct Ema {
    model: Yolo,
    updates: u64,
    decay: f64,
    tau: f64,
}

impl Ema {
    /// Starts from `model`'s weights (taken out of autodiff), Ultralytics' decay 0.9999 and tau 2000.
    pub fn new(model: &Yolo) -> Self {
        Self::with_decay(model, 0.9999, 2000.0)
    }

    pub fn with_decay(model: &Yolo, decay: f64, tau: f64) -> Self {
        Self {
            model: model.valid(),
            updates: 0,
            decay,
            tau,
        }
    }

    /// An average saved after `updates` updates (a checkpoint), with the defaults of `new`.
    pub(crate) fn restore(model: Yolo, updates: u64) -> Self {
        Self {
            updates,
            ..Self::new(&model)
        }
    }

    /// The weight the average keeps at the next update.
    pub fn next_decay(&self) -> f64 {
        self.decay * (1.0 - (-((self.updates + 1) as f64) / self.tau).exp())
    }

    /// Moves every float tensor (weights and batch-norm statistics) towards `model`'s.
    pub fn update(&mut self, model: &Yolo) {
        let d = self.next_decay();
        self.updates += 1;
        let mut current = Collect(Vec::new());
        model.valid().visit(&mut current);
        let mut blend = Blend {
            current: current.0.into_iter(),
            keep: d as f32,
        };
        self.model = self.model.clone().map(&mut blend);
    }

    /// The averaged network, for validation and export.
    pub fn model(&self) -> &Yolo {
        &self.model
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }
}

/// Every float tensor of a module, flattened, in visiting order.
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

/// `average · keep + current · (1 − keep)`, tensor by tensor in the same visiting order (the two
/// modules have one architecture).
struct Blend {
    current: std::vec::IntoIter<Tensor<1>>,
    keep: f32,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(current) = self.current.next() else {
            return param;
        };
        let keep = self.keep;
        param.map(|average| {
            let dims = average.dims();
            (average.mul_scalar(keep) + current.reshape(dims).mul_scalar(1.0 - keep)).detach()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_weight(model: &Yolo) -> f32 {
        let mut all = Collect(Vec::new());
        model.visit(&mut all);
        all.0[0]
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(f32::NAN)
    }

    #[test]
    fn the_average_moves_by_one_minus_the_ramped_decay() {
        let device = Device::flex();
        let start = Yolo::new(2, &device);
        let mut ema = Ema::with_decay(&start, 0.9, 1.0);
        // The first update keeps 0.9 · (1 − e⁻¹) of the average.
        let keep = 0.9 * (1.0 - (-1.0f64).exp());
        assert!((ema.next_decay() - keep).abs() < 1e-12);
        let other = Yolo::new(2, &device);
        let (a, b) = (first_weight(&start), first_weight(&other));
        ema.update(&other);
        let want = a * keep as f32 + b * (1.0 - keep as f32);
        assert!((first_weight(ema.model()) - want).abs() < 1e-6);
        assert_eq!(ema.updates(), 1);
    }
}
