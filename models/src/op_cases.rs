//! The GPU executor's operator cases: small ONNX graphs, built here, that meet what the
//! reference YOLO graphs do not — sides that are not multiples of the tiles, strides on odd
//! sides, groups, dilation, asymmetric padding, broadcasting, and the slices and transposes a
//! product reads in place. One list for every place the executor is checked: natively
//! (`tests/gpu_ops.rs`, on Vulkan) and in Chromium's WebGPU (the browser test
//! `prelabel_in_browser`, through the worker). tract's output is the reference, and
//! `conformance::compare_values` the comparison; tract itself is held to onnxruntime on the
//! whole graphs.

use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{Tensor as TensorType, Value as TypeValue};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use tract_onnx::prelude::*;

use crate::npy::NpyTensor;

/// One small graph: its input's shape, its nodes (reading `x`, writing `y` last) and constants.
pub struct OperatorCase {
    /// What it exercises, for the reports.
    pub name: &'static str,
    input: Vec<usize>,
    nodes: Vec<NodeProto>,
    constants: Vec<TensorProto>,
}

impl OperatorCase {
    /// The graph as an ONNX file, its input's shape declared.
    pub fn onnx(&self) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(GraphProto {
                name: self.name.into(),
                node: self.nodes.clone(),
                initializer: self.constants.clone(),
                input: vec![tensor_info("x", Some(&self.input))],
                output: vec![tensor_info("y", None)],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// Its input: deterministic values in [-1, 1).
    pub fn input(&self) -> NpyTensor {
        NpyTensor {
            shape: self.input.clone(),
            data: values(self.input.iter().product(), 7),
        }
    }

    /// tract's output for `input()`, through tract's optimised plan (what the CPU runs).
    pub fn reference(&self) -> Result<NpyTensor, String> {
        let run = || -> TractResult<NpyTensor> {
            let input = self.input();
            let tensor = Tensor::from_shape(&input.shape, &input.data)?;
            let outputs = tract_onnx::onnx()
                .model_for_read(&mut &self.onnx()[..])?
                .into_optimized()?
                .into_runnable()?
                .run(tvec!(tensor.into()))?;
            Ok(NpyTensor {
                shape: outputs[0].shape().to_vec(),
                data: outputs[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec(),
            })
        };
        run().map_err(|e| format!("{}: tract cannot run it: {e:#}", self.name))
    }
}

/// Every case, in a fixed order.
pub fn operator_cases() -> Vec<OperatorCase> {
    vec![
        conv_case(
            "conv 3×3 stride 2 on odd sides, 64×64 tiles with 70 channels and 61×70 pixels",
            [1, 5, 121, 139],
            [70, 5, 3, 3],
            vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])],
        ),
        conv_case(
            "conv 1×1 over 37×29 pixels, 33 input channels, 32×32 tiles",
            [1, 33, 37, 29],
            [17, 33, 1, 1],
            vec![],
        ),
        conv_case(
            "conv 3×3, 2 groups, dilation 2, asymmetric padding",
            [1, 6, 15, 16],
            [4, 3, 3, 3],
            vec![int("group", 2), ints("dilations", &[2, 2]), ints("pads", &[2, 1, 0, 3])],
        ),
        conv_case(
            "depthwise conv 3×3 stride 2",
            [1, 8, 9, 10],
            [8, 1, 3, 3],
            vec![int("group", 8), ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])],
        ),
        OperatorCase {
            name: "max pool 5×5 stride 1 (SPPF's)",
            input: vec![1, 3, 7, 9],
            nodes: vec![node(
                "MaxPool",
                &["x"],
                "y",
                vec![ints("kernel_shape", &[5, 5]), ints("pads", &[2, 2, 2, 2])],
            )],
            constants: vec![],
        },
        OperatorCase {
            name: "max pool 3×3 stride 2 on odd sides",
            input: vec![1, 4, 11, 13],
            nodes: vec![node(
                "MaxPool",
                &["x"],
                "y",
                vec![
                    ints("kernel_shape", &[3, 3]),
                    ints("strides", &[2, 2]),
                    ints("pads", &[1, 1, 1, 1]),
                ],
            )],
            constants: vec![],
        },
        OperatorCase {
            name: "nearest upsampling ×2",
            input: vec![1, 3, 5, 7],
            nodes: vec![node(
                "Resize",
                &["x", "", "scales"],
                "y",
                vec![
                    string("mode", "nearest"),
                    string("coordinate_transformation_mode", "asymmetric"),
                    string("nearest_mode", "floor"),
                ],
            )],
            constants: vec![floats_constant("scales", &[1.0, 1.0, 2.0, 2.0])],
        },
        OperatorCase {
            name: "split along channels, joined back in the other order",
            input: vec![1, 5, 4, 6],
            nodes: vec![
                split(&["x", "sizes"], &["a", "b"], 1),
                node("Concat", &["b", "a"], "y", vec![int("axis", 1)]),
            ],
            constants: vec![ints_constant("sizes", &[2, 3])],
        },
        OperatorCase {
            name: "slice with a step along the width",
            input: vec![1, 3, 5, 12],
            nodes: vec![node("Slice", &["x", "starts", "ends", "axes", "steps"], "y", vec![])],
            constants: vec![
                ints_constant("starts", &[1]),
                ints_constant("ends", &[10]),
                ints_constant("axes", &[3]),
                ints_constant("steps", &[2]),
            ],
        },
        OperatorCase {
            name: "softmax along channels",
            input: vec![1, 4, 3, 5],
            nodes: vec![node("Softmax", &["x"], "y", vec![int("axis", 1)])],
            constants: vec![],
        },
        OperatorCase {
            name: "transpose, then softmax on the last axis",
            input: vec![1, 4, 3, 5],
            nodes: vec![
                node("Transpose", &["x"], "t", vec![ints("perm", &[0, 2, 1, 3])]),
                node("Softmax", &["t"], "y", vec![int("axis", -1)]),
            ],
            constants: vec![],
        },
        OperatorCase {
            name: "batched product with a constant",
            input: vec![1, 2, 5, 8],
            nodes: vec![node("MatMul", &["x", "w"], "y", vec![])],
            constants: vec![constant("w", &[8, 6], 3)],
        },
        OperatorCase {
            name: "product of two slices of one tensor, one transposed (attention's q·k)",
            input: vec![1, 2, 16, 10],
            nodes: vec![
                split(&["x", "halves"], &["q", "k"], 2),
                node("Transpose", &["q"], "qt", vec![ints("perm", &[0, 1, 3, 2])]),
                node("MatMul", &["qt", "k"], "y", vec![]),
            ],
            constants: vec![ints_constant("halves", &[8, 8])],
        },
        OperatorCase {
            name: "broadcast add, multiply, subtract and divide",
            input: vec![1, 4, 5, 6],
            nodes: vec![
                node("Add", &["x", "c1"], "s", vec![]),
                node("Mul", &["s", "c2"], "m", vec![]),
                node("Sub", &["c3", "m"], "d", vec![]),
                node("Div", &["d", "c4"], "y", vec![]),
            ],
            constants: vec![
                constant("c1", &[4, 1, 6], 4),
                constant("c2", &[1, 1, 5, 1], 5),
                constant("c3", &[1], 6),
                floats_constant("c4", &[2.0, -4.0, 0.5, 8.0, -1.0, 3.0]),
            ],
        },
        OperatorCase {
            name: "x·sigmoid(x) on its own",
            input: vec![1, 3, 7, 5],
            nodes: vec![
                node("Sigmoid", &["x"], "s", vec![]),
                node("Mul", &["x", "s"], "y", vec![]),
            ],
            constants: vec![],
        },
    ]
}

fn conv_case(
    name: &'static str,
    input: [usize; 4],
    weights: [i64; 4],
    attributes: Vec<AttributeProto>,
) -> OperatorCase {
    OperatorCase {
        name,
        input: input.to_vec(),
        nodes: vec![node("Conv", &["x", "w", "b"], "y", attributes)],
        constants: vec![constant("w", &weights, 1), constant("b", &weights[..1], 2)],
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attributes,
        ..Default::default()
    }
}

/// A Split into `outputs` along `axis` (sizes as its second input).
fn split(inputs: &[&str], outputs: &[&str], axis: i64) -> NodeProto {
    NodeProto {
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..node("Split", inputs, outputs[0], vec![int("axis", axis)])
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Deterministic values in [-1, 1).
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn constant(name: &str, shape: &[i64], seed: u64) -> TensorProto {
    let count = shape.iter().product::<i64>() as usize;
    TensorProto {
        name: name.into(),
        dims: shape.to_vec(),
        data_type: DataType::Float as i32,
        float_data: values(count, seed),
        ..Default::default()
    }
}

fn ints_constant(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn floats_constant(name: &str, values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn tensor_info(name: &str, shape: Option<&[usize]>) -> ValueInfoProto {
    let shape = shape.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| Dimension {
                value: Some(dimension::Value::DimValue(d as i64)),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: DataType::Float as i32,
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
