//! The student network: YOLOv8n's architecture (Ultralytics `yolov8.yaml` at width 0.25, depth
//! 0.33) in burn — a C2f backbone with SPPF, a PAN neck and a decoupled, anchor-free head with
//! DFL box regression — so a trained student exports to the graph Ultralytics exports, and an
//! Ultralytics YOLOv8n's weights load into it (fine-tuning). Fields are named after Ultralytics'
//! layer indices (`model.0` … `model.22`): the same names the ONNX initializers carry.
//!
//! Backend-agnostic: tensors live on whatever `Device` they are created on (burn's flex CPU
//! backend by default, CUDA when built for it).

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu, softmax};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::weights::Weights;

/// Box regression bins per side (Ultralytics' `reg_max`).
pub const REG_MAX: usize = 16;
/// Output strides of the three detection levels.
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// Convolution, batch norm, SiLU (Ultralytics' `Conv`).
#[derive(Module, Debug)]
pub struct ConvBnSilu {
    pub(crate) conv: Conv2d,
    pub(crate) bn: BatchNorm,
}

impl ConvBnSilu {
    fn new(c1: usize, c2: usize, k: usize, s: usize, device: &Device) -> Self {
        let pad = k / 2;
        Self {
            conv: Conv2dConfig::new([c1, c2], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            // Ultralytics' `initialize_weights`: ε 1e-3, momentum 0.03 (see
            // `trainer::batch_norm_momentum` for the first steps).
            bn: BatchNormConfig::new(c2)
                .with_epsilon(1e-3)
                .with_momentum(0.03)
                .init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        silu(self.bn.forward(self.conv.forward(x)))
    }

    /// Takes an exported (batch-norm-folded) convolution's `{prefix}.conv.weight` and
    /// `.conv.bias`: the kernel becomes this convolution's, the bias the norm's shift, and the
    /// norm the identity.
    fn load(&mut self, prefix: &str, weights: &Weights, device: &Device) -> Result<(), String> {
        let weight = weights.tensor::<4>(&format!("{prefix}.conv.weight"), device)?;
        let bias = weights.tensor::<1>(&format!("{prefix}.conv.bias"), device)?;
        check_shape(prefix, &self.conv.weight.val().dims(), &weight.dims())?;
        let channels = bias.dims()[0];
        let epsilon = self.bn.epsilon as f32;
        self.conv.weight = Param::from_tensor(weight);
        self.bn.gamma = Param::from_tensor(Tensor::ones([channels], device));
        self.bn.beta = Param::from_tensor(bias);
        self.bn.running_mean = RunningState::new(Tensor::zeros([channels], device));
        // (x − 0) / √(1 − ε + ε) = x: the norm passes the folded convolution through.
        self.bn.running_var = RunningState::new(Tensor::ones([channels], device).sub_scalar(epsilon));
        Ok(())
    }
}

/// A plain convolution with bias (the head's last layers), from `{prefix}.weight` / `.bias`.
fn load_conv(conv: &mut Conv2d, prefix: &str, weights: &Weights, device: &Device) -> Result<(), String> {
    let weight = weights.tensor::<4>(&format!("{prefix}.weight"), device)?;
    check_shape(prefix, &conv.weight.val().dims(), &weight.dims())?;
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(
        weights.tensor::<1>(&format!("{prefix}.bias"), device)?,
    ));
    Ok(())
}

fn check_shape(prefix: &str, ours: &[usize], theirs: &[usize]) -> Result<(), String> {
    if ours == theirs {
        Ok(())
    } else {
        Err(format!("{prefix}: the network has {ours:?}, the weights {theirs:?}"))
    }
}

/// Two 3×3 convolutions, with a residual when `add`.
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub(crate) cv1: ConvBnSilu,
    pub(crate) cv2: ConvBnSilu,
    pub(crate) add: bool,
}

/// CSP bottleneck with two convolutions (Ultralytics' `C2f`): split, a chain of bottlenecks, and
/// every intermediate concatenated.
#[derive(Module, Debug)]
pub struct C2f {
    pub(crate) cv1: ConvBnSilu,
    pub(crate) cv2: ConvBnSilu,
    pub(crate) m: Vec<Bottleneck>,
}

impl C2f {
    fn new(c1: usize, c2: usize, n: usize, shortcut: bool, device: &Device) -> Self {
        let c = c2 / 2;
        Self {
            cv1: ConvBnSilu::new(c1, 2 * c, 1, 1, device),
            cv2: ConvBnSilu::new((2 + n) * c, c2, 1, 1, device),
            m: (0..n)
                .map(|_| Bottleneck {
                    cv1: ConvBnSilu::new(c, c, 3, 1, device),
                    cv2: ConvBnSilu::new(c, c, 3, 1, device),
                    add: shortcut,
                })
                .collect(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut parts = self.cv1.forward(x).chunk(2, 1);
        for block in &self.m {
            let last = parts[parts.len() - 1].clone();
            let y = block.cv2.forward(block.cv1.forward(last.clone()));
            parts.push(if block.add { y + last } else { y });
        }
        self.cv2.forward(Tensor::cat(parts, 1))
    }

    fn load(&mut self, prefix: &str, weights: &Weights, device: &Device) -> Result<(), String> {
        self.cv1.load(&format!("{prefix}.cv1"), weights, device)?;
        self.cv2.load(&format!("{prefix}.cv2"), weights, device)?;
        for (j, block) in self.m.iter_mut().enumerate() {
            block.cv1.load(&format!("{prefix}.m.{j}.cv1"), weights, device)?;
            block.cv2.load(&format!("{prefix}.m.{j}.cv2"), weights, device)?;
        }
        Ok(())
    }
}

/// Spatial pyramid pooling, fast: three chained 5×5 max pools, concatenated.
#[derive(Module, Debug)]
pub struct Sppf {
    pub(crate) cv1: ConvBnSilu,
    pub(crate) cv2: ConvBnSilu,
    pub(crate) pool: MaxPool2d,
}

impl Sppf {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.cv1.forward(x);
        let y1 = self.pool.forward(x.clone());
        let y2 = self.pool.forward(y1.clone());
        let y3 = self.pool.forward(y2.clone());
        self.cv2.forward(Tensor::cat(vec![x, y1, y2, y3], 1))
    }
}

/// One detection level of the head: a box branch (4 × `REG_MAX` bins) and a class branch.
#[derive(Module, Debug)]
pub struct HeadLevel {
    pub(crate) box_convs: [ConvBnSilu; 2],
    pub(crate) box_out: Conv2d,
    pub(crate) class_convs: [ConvBnSilu; 2],
    pub(crate) class_out: Conv2d,
}

impl HeadLevel {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let boxes = self
            .box_out
            .forward(self.box_convs[1].forward(self.box_convs[0].forward(x.clone())));
        let classes = self
            .class_out
            .forward(self.class_convs[1].forward(self.class_convs[0].forward(x)));
        Tensor::cat(vec![boxes, classes], 1)
    }
}

/// YOLOv8n.
#[derive(Module, Debug)]
pub struct Yolo {
    pub(crate) backbone_0: ConvBnSilu,
    pub(crate) backbone_1: ConvBnSilu,
    pub(crate) backbone_2: C2f,
    pub(crate) backbone_3: ConvBnSilu,
    pub(crate) backbone_4: C2f,
    pub(crate) backbone_5: ConvBnSilu,
    pub(crate) backbone_6: C2f,
    pub(crate) backbone_7: ConvBnSilu,
    pub(crate) backbone_8: C2f,
    pub(crate) sppf_9: Sppf,
    pub(crate) neck_12: C2f,
    pub(crate) neck_15: C2f,
    pub(crate) neck_16: ConvBnSilu,
    pub(crate) neck_18: C2f,
    pub(crate) neck_19: ConvBnSilu,
    pub(crate) neck_21: C2f,
    pub(crate) head_22: Vec<HeadLevel>,
    pub(crate) classes: usize,
}

/// One anchor: its centre in grid cells of its level, and the level's stride in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub x: f32,
    pub y: f32,
    pub stride: f32,
}

impl Anchor {
    /// The centre in input pixels.
    pub fn centre_px(&self) -> [f32; 2] {
        [self.x * self.stride, self.y * self.stride]
    }
}

/// The anchors of the head's maps, in output order: levels in stride order, rows then columns,
/// each at its cell's centre.
pub fn anchor_grid(levels: &[Tensor<4>]) -> Vec<Anchor> {
    let mut anchors = Vec::new();
    for (level, stride) in levels.iter().zip(STRIDES) {
        let [_, _, height, width] = level.dims();
        for y in 0..height {
            for x in 0..width {
                anchors.push(Anchor {
                    x: x as f32 + 0.5,
                    y: y as f32 + 0.5,
                    stride: stride as f32,
                });
            }
        }
    }
    anchors
}

/// Ultralytics' `Detect.bias_init`: class logits start at the log-odds of about 5 objects per
/// 640² image spread over the level's cells and the classes, so the first steps' loss is not
/// swamped by thousands of confident false positives; box bins start at 1.
fn class_prior(classes: usize, stride: usize) -> f32 {
    let cells = (640.0 / stride as f64).powi(2);
    (5.0 / classes.max(1) as f64 / cells).ln() as f32
}

fn with_bias(mut conv: Conv2d, value: f32) -> Conv2d {
    if let Some(bias) = &conv.bias {
        let dims = bias.val().dims();
        let device = bias.val().device();
        conv.bias = Some(Param::from_tensor(Tensor::full(dims, value, &device)));
    }
    conv
}

/// How many anchors an `imgsz`² input has (2100 at 320).
pub fn anchor_count(imgsz: u32) -> usize {
    STRIDES.iter().map(|s| (imgsz as usize / s).pow(2)).sum()
}

fn upsample(x: Tensor<4>) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([2.0, 2.0]),
    )
}

impl Yolo {
    /// A freshly initialised network for `classes` classes.
    pub fn new(classes: usize, device: &Device) -> Self {
        // Ultralytics' head widths: max(16, P3 channels / 4, 4 · reg_max) for boxes,
        // max(P3 channels, min(classes, 100)) for classes.
        let box_width = 64.max(4 * REG_MAX);
        let class_width = 64.max(classes.min(100));
        let head_22 = [64, 128, 256]
            .into_iter()
            .zip(STRIDES)
            .map(|(c, stride)| HeadLevel {
                box_convs: [
                    ConvBnSilu::new(c, box_width, 3, 1, device),
                    ConvBnSilu::new(box_width, box_width, 3, 1, device),
                ],
                box_out: with_bias(Conv2dConfig::new([box_width, 4 * REG_MAX], [1, 1]).init(device), 1.0),
                class_convs: [
                    ConvBnSilu::new(c, class_width, 3, 1, device),
                    ConvBnSilu::new(class_width, class_width, 3, 1, device),
                ],
                class_out: with_bias(
                    Conv2dConfig::new([class_width, classes], [1, 1]).init(device),
                    class_prior(classes, stride),
                ),
            })
            .collect();
        Self {
            backbone_0: ConvBnSilu::new(3, 16, 3, 2, device),
            backbone_1: ConvBnSilu::new(16, 32, 3, 2, device),
            backbone_2: C2f::new(32, 32, 1, true, device),
            backbone_3: ConvBnSilu::new(32, 64, 3, 2, device),
            backbone_4: C2f::new(64, 64, 2, true, device),
            backbone_5: ConvBnSilu::new(64, 128, 3, 2, device),
            backbone_6: C2f::new(128, 128, 2, true, device),
            backbone_7: ConvBnSilu::new(128, 256, 3, 2, device),
            backbone_8: C2f::new(256, 256, 1, true, device),
            sppf_9: Sppf {
                cv1: ConvBnSilu::new(256, 128, 1, 1, device),
                cv2: ConvBnSilu::new(512, 256, 1, 1, device),
                pool: MaxPool2dConfig::new([5, 5])
                    .with_strides([1, 1])
                    .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                    .init(),
            },
            neck_12: C2f::new(384, 128, 1, false, device),
            neck_15: C2f::new(192, 64, 1, false, device),
            neck_16: ConvBnSilu::new(64, 64, 3, 2, device),
            neck_18: C2f::new(192, 128, 1, false, device),
            neck_19: ConvBnSilu::new(128, 128, 3, 2, device),
            neck_21: C2f::new(384, 256, 1, false, device),
            head_22,
            classes,
        }
    }

    /// How many classes it detects.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Sets how fast every batch norm's running statistics follow the batches.
    pub fn set_batch_norm_momentum(&mut self, momentum: f64) {
        for layer in self.conv_layers_mut() {
            layer.bn.momentum = momentum;
        }
    }

    /// Every convolution–norm–SiLU layer, in no particular order.
    fn conv_layers_mut(&mut self) -> Vec<&mut ConvBnSilu> {
        fn c2f(block: &mut C2f) -> Vec<&mut ConvBnSilu> {
            let mut layers = vec![&mut block.cv1, &mut block.cv2];
            for b in &mut block.m {
                layers.push(&mut b.cv1);
                layers.push(&mut b.cv2);
            }
            layers
        }
        let mut layers = vec![
            &mut self.backbone_0,
            &mut self.backbone_1,
            &mut self.backbone_3,
            &mut self.backbone_5,
            &mut self.backbone_7,
            &mut self.sppf_9.cv1,
            &mut self.sppf_9.cv2,
            &mut self.neck_16,
            &mut self.neck_19,
        ];
        for block in [
            &mut self.backbone_2,
            &mut self.backbone_4,
            &mut self.backbone_6,
            &mut self.backbone_8,
            &mut self.neck_12,
            &mut self.neck_15,
            &mut self.neck_18,
            &mut self.neck_21,
        ] {
            layers.extend(c2f(block));
        }
        for level in &mut self.head_22 {
            layers.extend(level.box_convs.iter_mut());
            layers.extend(level.class_convs.iter_mut());
        }
        layers
    }

    /// The head's raw maps per level (strides 8, 16, 32): `[B, 4 · REG_MAX + classes, H, W]`,
    /// box bins then class logits — what the loss reads.
    pub fn forward(&self, images: Tensor<4>) -> Vec<Tensor<4>> {
        let x = self
            .backbone_2
            .forward(self.backbone_1.forward(self.backbone_0.forward(images)));
        let p3 = self.backbone_4.forward(self.backbone_3.forward(x));
        let p4 = self.backbone_6.forward(self.backbone_5.forward(p3.clone()));
        let p5 = self
            .sppf_9
            .forward(self.backbone_8.forward(self.backbone_7.forward(p4.clone())));
        let n12 = self.neck_12.forward(Tensor::cat(vec![upsample(p5.clone()), p4], 1));
        let out3 = self.neck_15.forward(Tensor::cat(vec![upsample(n12.clone()), p3], 1));
        let out4 = self
            .neck_18
            .forward(Tensor::cat(vec![self.neck_16.forward(out3.clone()), n12], 1));
        let out5 = self
            .neck_21
            .forward(Tensor::cat(vec![self.neck_19.forward(out4.clone()), p5], 1));
        [out3, out4, out5]
            .into_iter()
            .zip(&self.head_22)
            .map(|(x, level)| level.forward(x))
            .collect()
    }

    /// Ultralytics' exported output, `[B, 4 + classes, N]`: per anchor (levels in stride order,
    /// rows then columns) the box centre x, y, width, height in input pixels — the expectation of
    /// each side's `REG_MAX` bins, measured from the anchor's centre — then the class
    /// probabilities.
    pub fn decode(&self, levels: Vec<Tensor<4>>) -> Tensor<3> {
        let device = levels[0].device();
        let [batch, _, _, _] = levels[0].dims();
        let grid = anchor_grid(&levels);
        let maps = levels
            .into_iter()
            .map(|level| {
                let [_, channels, height, width] = level.dims();
                level.reshape([batch, channels, height * width])
            })
            .collect();
        let centres: Vec<(f32, f32)> = grid.iter().map(|a| (a.x, a.y)).collect();
        let strides: Vec<f32> = grid.iter().map(|a| a.stride).collect();
        let anchors = centres.len();
        let all = Tensor::cat(maps, 2);
        let bins = all.clone().slice([0..batch, 0..4 * REG_MAX, 0..anchors]);
        let logits = all.slice([0..batch, 4 * REG_MAX..4 * REG_MAX + self.classes, 0..anchors]);

        // Distribution focal loss's decoding: softmax over each side's bins, then its expectation.
        let bins = softmax(bins.reshape([batch, 4, REG_MAX, anchors]), 2);
        let positions = Tensor::<1, Int>::arange(0..REG_MAX as i64, &device)
            .float()
            .reshape([1, 1, REG_MAX, 1]);
        let distances: Tensor<3> = (bins * positions).sum_dim(2).reshape([batch, 4, anchors]);

        let xs: Vec<f32> = centres.iter().map(|c| c.0).collect();
        let ys: Vec<f32> = centres.iter().map(|c| c.1).collect();
        let centre = Tensor::cat(
            vec![
                Tensor::<1>::from_floats(xs.as_slice(), &device).reshape([1, 1, anchors]),
                Tensor::<1>::from_floats(ys.as_slice(), &device).reshape([1, 1, anchors]),
            ],
            1,
        );
        let stride = Tensor::<1>::from_floats(strides.as_slice(), &device).reshape([1, 1, anchors]);
        let left_top = distances.clone().slice([0..batch, 0..2, 0..anchors]);
        let right_bottom = distances.slice([0..batch, 2..4, 0..anchors]);
        let top_left = centre.clone() - left_top;
        let bottom_right = centre + right_bottom;
        let middle = (top_left.clone() + bottom_right.clone()).div_scalar(2.0);
        let size = bottom_right - top_left;
        let boxes = Tensor::cat(vec![middle, size], 1) * stride;
        Tensor::cat(vec![boxes, sigmoid(logits)], 1)
    }

    /// Takes every weight of an Ultralytics YOLOv8n export (batch norms folded into the
    /// convolutions, as `yolo export` writes them); fails naming the first layer that is missing
    /// or shaped differently (another architecture, or another number of classes).
    pub fn load_ultralytics(&mut self, weights: &Weights, device: &Device) -> Result<(), String> {
        self.backbone_0.load("model.0", weights, device)?;
        self.backbone_1.load("model.1", weights, device)?;
        self.backbone_2.load("model.2", weights, device)?;
        self.backbone_3.load("model.3", weights, device)?;
        self.backbone_4.load("model.4", weights, device)?;
        self.backbone_5.load("model.5", weights, device)?;
        self.backbone_6.load("model.6", weights, device)?;
        self.backbone_7.load("model.7", weights, device)?;
        self.backbone_8.load("model.8", weights, device)?;
        self.sppf_9.cv1.load("model.9.cv1", weights, device)?;
        self.sppf_9.cv2.load("model.9.cv2", weights, device)?;
        self.neck_12.load("model.12", weights, device)?;
        self.neck_15.load("model.15", weights, device)?;
        self.neck_16.load("model.16", weights, device)?;
        self.neck_18.load("model.18", weights, device)?;
        self.neck_19.load("model.19", weights, device)?;
        self.neck_21.load("model.21", weights, device)?;
        for (i, level) in self.head_22.iter_mut().enumerate() {
            for (j, conv) in level.box_convs.iter_mut().enumerate() {
                conv.load(&format!("model.22.cv2.{i}.{j}"), weights, device)?;
            }
            load_conv(&mut level.box_out, &format!("model.22.cv2.{i}.2"), weights, device)?;
            for (j, conv) in level.class_convs.iter_mut().enumerate() {
                conv.load(&format!("model.22.cv3.{i}.{j}"), weights, device)?;
            }
            load_conv(&mut level.class_out, &format!("model.22.cv3.{i}.2"), weights, device)?;
        }
        Ok(())
    }
}
