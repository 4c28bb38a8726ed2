//! The named float tensors of an ONNX file (its initializers): what fine-tuning starts from when
//! the starting point is a registered ONNX student (an Ultralytics export, or one of ours).

use std::collections::HashMap;

use burn::prelude::*;
use prost::Message;
use tract_onnx::pb::{ModelProto, TensorProto};

/// ONNX's data type number for 32-bit floats.
const FLOAT: i32 = 1;

/// Float initializers by name: `(dims, values)`.
#[derive(Debug, Default)]
pub struct Weights {
    by_name: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights {
    /// Reads every float initializer of an ONNX model.
    pub fn from_onnx(onnx: &[u8]) -> Result<Self, String> {
        let model = ModelProto::decode(onnx).map_err(|e| format!("not an ONNX model: {e}"))?;
        let graph = model.graph.ok_or("the ONNX model has no graph")?;
        let mut by_name = HashMap::new();
        for tensor in graph.initializer.iter().filter(|t| t.data_type == FLOAT) {
            by_name.insert(tensor.name.clone(), (dims(tensor)?, values(tensor)?));
        }
        Ok(Self { by_name })
    }

    /// How many float initializers there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The initializer `name` as a rank-`D` tensor on `device`.
    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>, String> {
        let (dims, values) = self
            .by_name
            .get(name)
            .ok_or_else(|| format!("the weights have no {name}"))?;
        if dims.len() != D {
            return Err(format!("{name} has rank {}, expected {D}", dims.len()));
        }
        Ok(Tensor::from_data(TensorData::new(values.clone(), dims.clone()), device))
    }
}

fn dims(tensor: &TensorProto) -> Result<Vec<usize>, String> {
    tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("{} has a negative dimension", tensor.name)))
        .collect()
}

fn values(tensor: &TensorProto) -> Result<Vec<f32>, String> {
    if !tensor.float_data.is_empty() {
        return Ok(tensor.float_data.clone());
    }
    if !tensor.raw_data.len().is_multiple_of(4) {
        return Err(format!("{}'s raw data is not a whole number of floats", tensor.name));
    }
    Ok(tensor
        .raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
