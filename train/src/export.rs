//! The student as an ONNX file, written with tract's protobuf types: batch norms folded into
//! the convolutions, initializers named as Ultralytics names them (`model.4.m.0.cv1.conv.weight`,
//! so the file loads back for fine-tuning), the output in the v8 layout `[1, 4 + classes, N]`
//! (box centre and size in input pixels, then class probabilities), and Ultralytics' metadata
//! (`names`, `imgsz`, `stride`, `task`) — so the registry, the browser worker, onnxruntime and
//! Ultralytics' own ONNX loader run it as they run a `yolo export`.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Value};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::yolo::{Bottleneck, C2f, ConvBnSilu, HeadLevel, REG_MAX, STRIDES, Yolo, anchor_count};

/// Operator set the graph is written for (every op here is unchanged since 13).
pub const OPSET: i64 = 17;
/// ONNX IR version matching opset 17.
const IR_VERSION: i64 = 8;
const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// The ONNX file of `model` for a fixed `[1, 3, imgsz, imgsz]` input, with `names` as its classes.
pub fn export_onnx(model: &Yolo, imgsz: u32, names: &[String]) -> Result<Vec<u8>, String> {
    if names.len() != model.classes() {
        return Err(format!(
            "{} class names for a network of {} classes",
            names.len(),
            model.classes()
        ));
    }
    let model = model.valid();
    let mut g = Graph::default();
    let x = "images".to_string();
    let x = g.conv_bn_silu(&model.backbone_0, "model.0", &x);
    let x = g.conv_bn_silu(&model.backbone_1, "model.1", &x);
    let x = g.c2f(&model.backbone_2, "model.2", &x);
    let x = g.conv_bn_silu(&model.backbone_3, "model.3", &x);
    let p3 = g.c2f(&model.backbone_4, "model.4", &x);
    let x = g.conv_bn_silu(&model.backbone_5, "model.5", &p3);
    let p4 = g.c2f(&model.backbone_6, "model.6", &x);
    let x = g.conv_bn_silu(&model.backbone_7, "model.7", &p4);
    let x = g.c2f(&model.backbone_8, "model.8", &x);
    let p5 = g.sppf(&model, &x);

    let up = g.upsample("model.10", &p5);
    let x = g.concat("model.11", &[&up, &p4], 1);
    let n12 = g.c2f(&model.neck_12, "model.12", &x);
    let up = g.upsample("model.13", &n12);
    let x = g.concat("model.14", &[&up, &p3], 1);
    let out3 = g.c2f(&model.neck_15, "model.15", &x);
    let down = g.conv_bn_silu(&model.neck_16, "model.16", &out3);
    let x = g.concat("model.17", &[&down, &n12], 1);
    let out4 = g.c2f(&model.neck_18, "model.18", &x);
    let down = g.conv_bn_silu(&model.neck_19, "model.19", &out4);
    let x = g.concat("model.20", &[&down, &p5], 1);
    let out5 = g.c2f(&model.neck_21, "model.21", &x);

    let output = g.head(&model, imgsz, &[out3, out4, out5]);

    let classes = model.classes();
    let graph = GraphProto {
        name: "distillery-student".into(),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info("images", &[1, 3, imgsz as i64, imgsz as i64])],
        output: vec![value_info(
            &output,
            &[1, (4 + classes) as i64, anchor_count(imgsz) as i64],
        )],
        ..GraphProto::default()
    };
    let names_literal = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}: {}", python_string(n)))
        .collect::<Vec<_>>()
        .join(", ");
    let metadata = [
        ("description", "Distillery student (YOLOv8n)".to_string()),
        ("author", "Distillery".to_string()),
        ("task", "detect".to_string()),
        ("batch", "1".to_string()),
        ("stride", STRIDES[STRIDES.len() - 1].to_string()),
        ("imgsz", format!("[{imgsz}, {imgsz}]")),
        ("names", format!("{{{names_literal}}}")),
    ];
    let onnx = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "distillery".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key: key.into(), value })
            .collect(),
        ..ModelProto::default()
    };
    Ok(onnx.encode_to_vec())
}

/// A Python string literal (what Ultralytics' metadata parsers read), single-quoted.
fn python_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d)),
                            ..Dimension::default()
                        })
                        .collect(),
                }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..AttributeProto::default()
    }
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// Nodes and initializers in the order they are added (which is topological: every node's
/// inputs exist before it).
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    fn floats(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
        name.into()
    }

    fn int64s(&mut self, name: &str, data: &[i64]) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: INT64,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
        name.into()
    }

    /// One node named `name`, output `name:0`, `name:1`… (`outputs` of them).
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        outputs: usize,
    ) -> Vec<String> {
        let output: Vec<String> = (0..outputs).map(|i| format!("{name}_output_{i}")).collect();
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.clone(),
            attribute,
            ..NodeProto::default()
        });
        output
    }

    fn one(&mut self, op: &str, name: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.node(op, name, inputs, attribute, 1).remove(0)
    }

    /// Renames the last node's output (the graph's output keeps Ultralytics' name).
    fn rename_output(&mut self, from: &str, to: &str) -> String {
        for node in &mut self.nodes {
            for output in node.output.iter_mut().filter(|o| *o == from) {
                *output = to.into();
            }
        }
        to.into()
    }

    /// A convolution with bias, `weight`/`bias` already final.
    fn conv(&mut self, conv: &Conv2d, prefix: &str, input: &str, weight: Tensor<4>, bias: Tensor<1>) -> String {
        let dims = weight.dims();
        let [kh, kw] = conv.kernel_size;
        let pad = |k: usize| (k / 2) as i64;
        let w = self.floats(&format!("{prefix}.weight"), &dims, values(weight));
        let b = self.floats(&format!("{prefix}.bias"), &[dims[0]], values(bias));
        self.one(
            "Conv",
            &format!("/{prefix}/Conv"),
            &[input, &w, &b],
            vec![
                ints("dilations", &[1, 1]),
                int("group", conv.groups as i64),
                ints("kernel_shape", &[kh as i64, kw as i64]),
                ints("pads", &[pad(kh), pad(kw), pad(kh), pad(kw)]),
                ints("strides", &[conv.stride[0] as i64, conv.stride[1] as i64]),
            ],
        )
    }

    /// Convolution with its batch norm folded in, then SiLU as `x · sigmoid(x)`.
    fn conv_bn_silu(&mut self, layer: &ConvBnSilu, prefix: &str, input: &str) -> String {
        let (weight, bias) = fold(&layer.conv, &layer.bn);
        let y = self.conv(&layer.conv, &format!("{prefix}.conv"), input, weight, bias);
        let s = self.one("Sigmoid", &format!("/{prefix}/act/Sigmoid"), &[&y], vec![]);
        self.one("Mul", &format!("/{prefix}/act/Mul"), &[&y, &s], vec![])
    }

    fn c2f(&mut self, block: &C2f, prefix: &str, input: &str) -> String {
        let y = self.conv_bn_silu(&block.cv1, &format!("{prefix}.cv1"), input);
        let half = (block.cv1.conv.weight.val().dims()[0] / 2) as i64;
        let split = self.int64s(&format!("/{prefix}/split_sizes"), &[half, half]);
        let mut parts = self.node(
            "Split",
            &format!("/{prefix}/Split"),
            &[&y, &split],
            vec![int("axis", 1)],
            2,
        );
        for (j, bottleneck) in block.m.iter().enumerate() {
            let last = parts[parts.len() - 1].clone();
            parts.push(self.bottleneck(bottleneck, &format!("{prefix}.m.{j}"), &last));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let cat = self.one("Concat", &format!("/{prefix}/Concat"), &refs, vec![int("axis", 1)]);
        self.conv_bn_silu(&block.cv2, &format!("{prefix}.cv2"), &cat)
    }

    fn bottleneck(&mut self, block: &Bottleneck, prefix: &str, input: &str) -> String {
        let y = self.conv_bn_silu(&block.cv1, &format!("{prefix}.cv1"), input);
        let y = self.conv_bn_silu(&block.cv2, &format!("{prefix}.cv2"), &y);
        if block.add {
            self.one("Add", &format!("/{prefix}/Add"), &[input, &y], vec![])
        } else {
            y
        }
    }

    fn sppf(&mut self, model: &Yolo, input: &str) -> String {
        let x = self.conv_bn_silu(&model.sppf_9.cv1, "model.9.cv1", input);
        let pool = |g: &mut Self, name: &str, input: &str| {
            g.one(
                "MaxPool",
                name,
                &[input],
                vec![
                    ints("kernel_shape", &[5, 5]),
                    ints("pads", &[2, 2, 2, 2]),
                    ints("strides", &[1, 1]),
                ],
            )
        };
        let y1 = pool(self, "/model.9/m/MaxPool", &x);
        let y2 = pool(self, "/model.9/m_1/MaxPool", &y1);
        let y3 = pool(self, "/model.9/m_2/MaxPool", &y2);
        let cat = self.one("Concat", "/model.9/Concat", &[&x, &y1, &y2, &y3], vec![int("axis", 1)]);
        self.conv_bn_silu(&model.sppf_9.cv2, "model.9.cv2", &cat)
    }

    fn upsample(&mut self, prefix: &str, input: &str) -> String {
        let scales = self.floats(&format!("/{prefix}/scales"), &[4], vec![1.0, 1.0, 2.0, 2.0]);
        self.one(
            "Resize",
            &format!("/{prefix}/Resize"),
            &[input, "", &scales],
            vec![
                string("coordinate_transformation_mode", "asymmetric"),
                string("mode", "nearest"),
                string("nearest_mode", "floor"),
            ],
        )
    }

    fn concat(&mut self, prefix: &str, inputs: &[&str], axis: i64) -> String {
        self.one("Concat", &format!("/{prefix}/Concat"), inputs, vec![int("axis", axis)])
    }

    fn head_level(&mut self, level: &HeadLevel, i: usize, input: &str) -> String {
        let branch = |g: &mut Self, convs: &[ConvBnSilu; 2], out: &Conv2d, cv: &str| {
            let y = g.conv_bn_silu(&convs[0], &format!("model.22.{cv}.{i}.0"), input);
            let y = g.conv_bn_silu(&convs[1], &format!("model.22.{cv}.{i}.1"), &y);
            let bias = out.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| {
                let [o, _, _, _] = out.weight.val().dims();
                Tensor::zeros([o], &out.weight.val().device())
            });
            g.conv(out, &format!("model.22.{cv}.{i}.2"), &y, out.weight.val(), bias)
        };
        let boxes = branch(self, &level.box_convs, &level.box_out, "cv2");
        let classes = branch(self, &level.class_convs, &level.class_out, "cv3");
        self.one(
            "Concat",
            &format!("/model.22/Concat_{i}"),
            &[&boxes, &classes],
            vec![int("axis", 1)],
        )
    }

    /// The detect head with its decoding: `[1, 4 + classes, N]`.
    fn head(&mut self, model: &Yolo, imgsz: u32, levels: &[String]) -> String {
        let classes = model.classes();
        let channels = (4 * REG_MAX + classes) as i64;
        let anchors = anchor_count(imgsz) as i64;
        let mut flat = Vec::new();
        for (i, (input, level)) in levels.iter().zip(&model.head_22).enumerate() {
            let y = self.head_level(level, i, input);
            let shape = self.int64s(&format!("/model.22/shape_{i}"), &[1, channels, -1]);
            flat.push(self.one("Reshape", &format!("/model.22/Reshape_{i}"), &[&y, &shape], vec![]));
        }
        let refs: Vec<&str> = flat.iter().map(String::as_str).collect();
        let all = self.one("Concat", "/model.22/Concat_3", &refs, vec![int("axis", 2)]);
        let sizes = self.int64s("/model.22/split_sizes", &[4 * REG_MAX as i64, classes as i64]);
        let parts = self.node("Split", "/model.22/Split", &[&all, &sizes], vec![int("axis", 1)], 2);

        // DFL: softmax over each side's bins (moved to the last axis), then the expectation.
        let shape = self.int64s("/model.22/dfl/shape", &[1, 4, REG_MAX as i64, anchors]);
        let bins = self.one("Reshape", "/model.22/dfl/Reshape", &[&parts[0], &shape], vec![]);
        let bins = self.one(
            "Transpose",
            "/model.22/dfl/Transpose",
            &[&bins],
            vec![ints("perm", &[0, 1, 3, 2])],
        );
        let probabilities = self.one("Softmax", "/model.22/dfl/Softmax", &[&bins], vec![int("axis", -1)]);
        let positions: Vec<f32> = (0..REG_MAX).map(|i| i as f32).collect();
        let positions = self.floats("model.22.dfl.positions", &[REG_MAX, 1], positions);
        let distances = self.one("MatMul", "/model.22/dfl/MatMul", &[&probabilities, &positions], vec![]);
        let shape = self.int64s("/model.22/dfl/shape_out", &[1, 4, anchors]);
        let distances = self.one("Reshape", "/model.22/dfl/Reshape_1", &[&distances, &shape], vec![]);

        // Corners from the anchor centres, then centre and size, in pixels.
        let (mut xs, mut ys, mut strides) = (Vec::new(), Vec::new(), Vec::new());
        for stride in STRIDES {
            let side = imgsz as usize / stride;
            for y in 0..side {
                for x in 0..side {
                    xs.push(x as f32 + 0.5);
                    ys.push(y as f32 + 0.5);
                    strides.push(stride as f32);
                }
            }
        }
        let n = anchors as usize;
        let centres = self.floats("/model.22/anchors", &[1, 2, n], [xs, ys].concat());
        let strides = self.floats("/model.22/strides", &[1, 1, n], strides);
        let sides = self.int64s("/model.22/side_sizes", &[2, 2]);
        let sides = self.node(
            "Split",
            "/model.22/Split_1",
            &[&distances, &sides],
            vec![int("axis", 1)],
            2,
        );
        let top_left = self.one("Sub", "/model.22/Sub", &[&centres, &sides[0]], vec![]);
        let bottom_right = self.one("Add", "/model.22/Add", &[&centres, &sides[1]], vec![]);
        let sum = self.one("Add", "/model.22/Add_1", &[&top_left, &bottom_right], vec![]);
        let half = self.floats("/model.22/half", &[1], vec![0.5]);
        let centre = self.one("Mul", "/model.22/Mul", &[&sum, &half], vec![]);
        let size = self.one("Sub", "/model.22/Sub_1", &[&bottom_right, &top_left], vec![]);
        let boxes = self.one("Concat", "/model.22/Concat_4", &[&centre, &size], vec![int("axis", 1)]);
        let boxes = self.one("Mul", "/model.22/Mul_1", &[&boxes, &strides], vec![]);
        let scores = self.one("Sigmoid", "/model.22/Sigmoid", &[&parts[1]], vec![]);
        let output = self.one("Concat", "/model.22/Concat_5", &[&boxes, &scores], vec![int("axis", 1)]);
        self.rename_output(&output, "output0")
    }
}

/// The convolution's kernel and bias with the batch norm folded in:
/// `w · γ/√(σ² + ε)` and `β − μ · γ/√(σ² + ε)`.
fn fold(conv: &Conv2d, bn: &BatchNorm) -> (Tensor<4>, Tensor<1>) {
    let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
    let [o, _, _, _] = conv.weight.val().dims();
    let weight = conv.weight.val() * scale.clone().reshape([o, 1, 1, 1]);
    let mut bias = bn.beta.val() - bn.running_mean.value() * scale.clone();
    if let Some(b) = &conv.bias {
        bias = bias + b.val() * scale;
    }
    (weight, bias)
}
