//! The detector's graph as the GPU runs it: tract's typed model (before tract's own
//! optimisations, which target CPU caches) lowered to a handful of kernels over contiguous f32
//! tensors. Everything that depends only on constants — shapes, casts, the anchor grid — is
//! folded here by tract's own evaluation, so the plan keeps only work that touches the image.

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Slice, StridedSlice, TypedConcat};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PoolSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Interpolator};
use tract_onnx::tract_core::ops::nn::{DataFormat, NearestUpsample, Softmax, SoftmaxKind};
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx_opl::resize::{CoordTransform, Nearest, Resize};

/// Index of a tensor in [`Graph::values`].
pub(crate) type ValueId = usize;

/// Why a graph cannot run on the GPU executor: the node and what it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The node's name in the graph.
    pub node: String,
    /// The operator, or what about it is not supported.
    pub what: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (node {})", self.what, self.node)
    }
}

/// A tensor on the GPU: contiguous f32 in C order.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub shape: Vec<usize>,
    pub home: Home,
}

impl Value {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where a value's elements live.
#[derive(Debug, Clone)]
pub(crate) enum Home {
    /// In storage of its own, written by one step.
    Own,
    /// Inside another value's storage from `offset` on: a reshape, a channel slice, or a concat
    /// member its producer writes straight into the concat.
    In { of: ValueId, offset: usize },
    /// Inside another value's storage from `offset` on with its rows (its last axis) `apart`
    /// elements apart: a convolution's output that is one member of a concat along the last
    /// axis (the detection head's scales joined along the anchors). Only the convolution that
    /// writes it addresses it so; nothing reads it (`Graph::place_row_members`).
    Rows { of: ValueId, offset: usize, apart: usize },
    /// The graph's input image.
    Input,
    /// Uploaded once with the model.
    Const(Vec<f32>),
}

/// What runs after a kernel's arithmetic, on each output element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    None = 0,
    Sigmoid = 1,
    /// x·sigmoid(x), which Ultralytics exports as a Sigmoid and a Mul.
    Silu = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
}

/// A 2-D convolution over one `[C, H, W]` image (batch 1), weights OIHW.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub in_channels: usize,
    pub in_hw: [usize; 2],
    pub out_channels: usize,
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Padding before each spatial axis (after is implied by the output size).
    pub pad: [usize; 2],
    pub groups: usize,
}

/// A max pool over one `[C, H, W]` image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub channels: usize,
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

/// How an element-wise step or a product walks an operand: from `offset` elements into it, for
/// each axis of the output, the operand's stride (0 where it broadcasts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operand {
    pub value: ValueId,
    /// Non-zero where a slice is read in place (`Graph::fold_copies_into_operands`).
    pub offset: usize,
    pub strides: Vec<usize>,
}

/// Where a strided copy reads, per axis of the copied shape: element `i` along an axis comes
/// from `offset + Σ (i / divisor) · stride` (divisors > 1 repeat elements: nearest upsampling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addressing {
    pub offset: usize,
    pub strides: Vec<usize>,
    pub divisors: Vec<usize>,
}

/// Where a strided copy writes: element `i` along an axis lands at `offset + Σ i · stride`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub offset: usize,
    pub strides: Vec<usize>,
}

/// One kernel dispatch of the plan.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Conv {
        input: ValueId,
        weights: ValueId,
        bias: ValueId,
        output: ValueId,
        geometry: ConvGeometry,
        activation: Activation,
    },
    Binary {
        op: BinaryOp,
        a: Operand,
        b: Operand,
        output: ValueId,
    },
    Unary {
        input: ValueId,
        output: ValueId,
        activation: Activation,
    },
    /// Slices, transposes, upsampling and concat members that are not written in place.
    Copy {
        input: ValueId,
        read: Addressing,
        output: ValueId,
        write: Destination,
        shape: Vec<usize>,
    },
    MaxPool {
        input: ValueId,
        output: ValueId,
        geometry: PoolGeometry,
    },
    /// Softmax along `axis` of the output's shape, reading the input through `read`: plainly,
    /// or through the strides of a transpose folded into it (the DFL head's).
    Softmax {
        input: ValueId,
        read: Addressing,
        output: ValueId,
        axis: usize,
    },
    /// A product of two operands summed over one axis (MatMul and its batched forms).
    MatMul {
        a: Operand,
        b: Operand,
        summed: SummedAxis,
        output: ValueId,
    },
}

/// The axis a [`Step::MatMul`] sums over: its length and its stride in each operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SummedAxis {
    pub len: usize,
    pub a_stride: usize,
    pub b_stride: usize,
}

impl Step {
    /// The value this step writes.
    pub fn output(&self) -> ValueId {
        match self {
            Step::Conv { output, .. }
            | Step::Binary { output, .. }
            | Step::Unary { output, .. }
            | Step::Copy { output, .. }
            | Step::MaxPool { output, .. }
            | Step::Softmax { output, .. }
            | Step::MatMul { output, .. } => *output,
        }
    }

    /// Whether this step's kernel can read its inputs from the buffer it writes (other parts of
    /// it, through its one writable binding): a C2f sum or an SPPF pool then writes straight into
    /// the concat that holds what it reads. WebGPU forbids binding one buffer twice in a
    /// dispatch where one binding writes.
    pub fn reads_where_it_writes(&self) -> bool {
        matches!(self, Step::Binary { .. } | Step::MaxPool { .. })
    }

    /// The values this step reads.
    pub fn inputs(&self) -> Vec<ValueId> {
        match self {
            Step::Conv {
                input, weights, bias, ..
            } => vec![*input, *weights, *bias],
            Step::Binary { a, b, .. } | Step::MatMul { a, b, .. } => vec![a.value, b.value],
            Step::Unary { input, .. }
            | Step::Copy { input, .. }
            | Step::MaxPool { input, .. }
            | Step::Softmax { input, .. } => vec![*input],
        }
    }
}

/// The lowered graph: values, steps in execution order, and which value is which output.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub values: Vec<Value>,
    pub steps: Vec<Step>,
    pub input: ValueId,
    pub outputs: Vec<ValueId>,
}

impl Graph {
    /// Lowers `model` (one f32 input, shapes fixed) and fuses what the kernels can do together.
    pub fn lower(model: &TypedModel) -> Result<Self, Unsupported> {
        let mut graph = Lowering::new(model).run()?;
        graph.fuse_silu();
        graph.place_split_values();
        graph.place_concat_members();
        graph.place_row_members();
        graph.fuse_sigmoid_into_convs();
        graph.fold_transposes_into_softmax();
        graph.fold_copies_into_operands();
        Ok(graph)
    }

    /// The value whose storage holds `value`, and where in it `value` starts.
    pub fn root(&self, mut value: ValueId) -> (ValueId, usize) {
        let mut offset = 0;
        while let Home::In { of, offset: o } | Home::Rows { of, offset: o, .. } = self.values[value].home {
            offset += o;
            value = of;
        }
        (value, offset)
    }

    fn new_value(&mut self, shape: Vec<usize>, home: Home) -> ValueId {
        self.values.push(Value { shape, home });
        self.values.len() - 1
    }

    /// The step that writes each value, by index (a value placed in another keeps its own
    /// entry: its producer still names it as output).
    fn producers(&self) -> HashMap<ValueId, usize> {
        (self.steps.iter().enumerate())
            .map(|(index, step)| (step.output(), index))
            .collect()
    }

    /// How many times each value is read: by steps, as an output, and through each value
    /// inside it that is read (a view nothing reads, or a member only written, reads nothing).
    fn readers(&self) -> Vec<usize> {
        let mut direct = vec![0; self.values.len()];
        for input in self.steps.iter().flat_map(Step::inputs) {
            direct[input] += 1;
        }
        for output in &self.outputs {
            direct[*output] += 1;
        }
        let mut inside: Vec<Vec<ValueId>> = vec![Vec::new(); self.values.len()];
        for (value, v) in self.values.iter().enumerate() {
            if let Home::In { of, .. } = v.home {
                inside[of].push(value);
            }
        }
        fn is_read(value: ValueId, direct: &[usize], inside: &[Vec<ValueId>]) -> bool {
            direct[value] > 0 || inside[value].iter().any(|&v| is_read(v, direct, inside))
        }
        (0..self.values.len())
            .map(|value| direct[value] + inside[value].iter().filter(|&&v| is_read(v, &direct, &inside)).count())
            .collect()
    }

    /// `x · sigmoid(x)` becomes one activation: in the convolution that made `x` when nothing
    /// else reads `x`, else one Silu step instead of two.
    fn fuse_silu(&mut self) {
        loop {
            let readers = self.readers();
            let producer = self.producers();
            let found = self.steps.iter().enumerate().find_map(|(mul_index, step)| {
                let Step::Binary {
                    op: BinaryOp::Mul,
                    a,
                    b,
                    output,
                } = step
                else {
                    return None;
                };
                let full = |o: &Operand| self.values[o.value].shape == self.values[*output].shape;
                if !full(a) || !full(b) {
                    return None;
                }
                [(a.value, b.value), (b.value, a.value)].into_iter().find_map(|(x, s)| {
                    let sigmoid_index = *producer.get(&s)?;
                    match &self.steps[sigmoid_index] {
                        Step::Unary {
                            input,
                            activation: Activation::Sigmoid,
                            ..
                        } if *input == x && readers[s] == 1 => Some((mul_index, sigmoid_index, x, *output)),
                        _ => None,
                    }
                })
            });
            let Some((mul_index, sigmoid_index, x, output)) = found else {
                return;
            };
            let conv_of_x = producer.get(&x).copied().filter(|&i| {
                readers[x] == 2
                    && matches!(
                        self.steps[i],
                        Step::Conv {
                            activation: Activation::None,
                            ..
                        }
                    )
            });
            match conv_of_x {
                Some(conv_index) => {
                    if let Step::Conv {
                        output: conv_output,
                        activation,
                        ..
                    } = &mut self.steps[conv_index]
                    {
                        *conv_output = output;
                        *activation = Activation::Silu;
                    }
                    remove_steps(&mut self.steps, &[mul_index, sigmoid_index]);
                }
                None => {
                    self.steps[mul_index] = Step::Unary {
                        input: x,
                        output,
                        activation: Activation::Silu,
                    };
                    remove_steps(&mut self.steps, &[sigmoid_index]);
                }
            }
        }
    }

    /// A value whose slices join a concat whole and in order (C2f's first convolution, split
    /// in halves that both join its concat) is written by its producer straight into the
    /// concat, so the halves cost no copy. Runs before `place_concat_members`, which then sees
    /// which producers read the concat's storage through those slices.
    fn place_split_values(&mut self) {
        let producer = self.producers();
        let mut members: HashMap<(ValueId, ValueId), Vec<SplitMember>> = HashMap::new();
        for (index, step) in self.steps.iter().enumerate() {
            let Step::Copy {
                input,
                output,
                write,
                read,
                ..
            } = step
            else {
                continue;
            };
            let member = &self.values[*input];
            // A view (a slice, a reshape) of a value with storage of its own.
            let (of, offset) = self.root(*input);
            if of != *input && is_concat_copy(read, write, &member.shape) && matches!(self.values[of].home, Home::Own) {
                members.entry((of, *output)).or_default().push(SplitMember {
                    copy: index,
                    in_value: offset,
                    in_concat: write.offset,
                    len: member.len(),
                });
            }
        }
        let mut placed_copies = Vec::new();
        for ((split, concat), copies) in members {
            let Some(&producer_index) = producer.get(&split) else {
                continue;
            };
            // Every slice sits in the concat where it sits in the value, shifted by one offset.
            let Some(offset) = copies[0].in_concat.checked_sub(copies[0].in_value) else {
                continue;
            };
            let same_layout = (copies.iter()).all(|m| m.in_concat.checked_sub(m.in_value) == Some(offset));
            let mut starts: Vec<usize> = copies.iter().map(|m| m.in_value).collect();
            starts.sort_unstable();
            starts.dedup();
            let covered =
                starts.len() == copies.len() && copies.iter().map(|m| m.len).sum::<usize>() == self.values[split].len();
            let concat_root = self.root(concat).0;
            let reads_concat = (self.steps[producer_index].inputs().iter()).any(|&v| self.root(v).0 == concat_root);
            // Still its own: slices of one value may join two concats, it can live in one.
            let own = matches!(self.values[split].home, Home::Own);
            if own
                && same_layout
                && covered
                && !reads_concat
                && !matches!(self.steps[producer_index], Step::Copy { .. })
            {
                self.values[split].home = Home::In { of: concat, offset };
                placed_copies.extend(copies.iter().map(|m| m.copy));
            }
        }
        remove_steps(&mut self.steps, &placed_copies);
    }

    /// Concat members that a step writes are written straight into their slice of the concat
    /// (the C2f blocks' concatenations then cost no copy, and an upsampling copies straight
    /// into the neck's concat; a C2f sum or an SPPF pool, whose kernels read where they write,
    /// writes into the concat it reads from). Any other producer that reads from the concat's
    /// storage keeps its own output and is copied, as is a member another reader of which
    /// writes into the concat: WebGPU forbids binding one buffer to be read and written in one
    /// dispatch.
    fn place_concat_members(&mut self) {
        let producer = self.producers();
        let copies: Vec<(usize, ValueId, ValueId, usize)> = (self.steps.iter().enumerate())
            .filter_map(|(index, step)| match step {
                Step::Copy {
                    input,
                    output,
                    write,
                    read,
                    ..
                } if is_concat_copy(read, write, &self.values[*input].shape) => {
                    Some((index, *input, *output, write.offset))
                }
                _ => None,
            })
            .collect();
        let mut placed_copies = Vec::new();
        let mut by_producer: Vec<_> = copies
            .into_iter()
            .filter_map(|(copy, member, concat, offset)| Some((*producer.get(&member)?, copy, member, concat, offset)))
            .collect();
        by_producer.sort();
        for (producer_index, copy, member, concat, offset) in by_producer {
            let own = matches!(self.values[member].home, Home::Own);
            let concat_root = self.root(concat).0;
            let producer = &self.steps[producer_index];
            let reads_concat = (producer.inputs().iter()).any(|&v| self.root(v).0 == concat_root);
            // Other readers then read the member from the concat (the neck's skips, read by a
            // convolution or an upsampling too), so they must be able to if they write into it.
            let other_readers_write_concat = (self.steps.iter().enumerate())
                .filter(|(index, step)| *index != copy && step.inputs().iter().any(|&v| self.root(v).0 == member))
                .any(|(_, step)| self.root(step.output()).0 == concat_root && !step.reads_where_it_writes());
            if own
                && !self.outputs.contains(&member)
                && (!reads_concat || producer.reads_where_it_writes())
                && !other_readers_write_concat
            {
                self.values[member].home = Home::In { of: concat, offset };
                placed_copies.push(copy);
            }
        }
        remove_steps(&mut self.steps, &placed_copies);
    }

    /// A convolution whose output (or a reshape of it to `[C, H·W]`) joins a concat along the
    /// last axis and is read by nothing else writes each output channel straight into its row
    /// of the concat: the detection head joins its three scales along the anchors, six copies
    /// in YOLOv8 without this.
    fn place_row_members(&mut self) {
        let producer = self.producers();
        let readers = self.readers();
        let mut placed = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            let Step::Copy {
                input,
                read,
                output,
                write,
                ..
            } = step
            else {
                continue;
            };
            let Some(rows) = RowMember::of(read, write, &self.values[*input].shape) else {
                continue;
            };
            // The convolution's own output, or a reshape of it read by nothing else.
            let written = match self.values[*input].home {
                Home::Own => *input,
                Home::In { of, offset: 0 } if readers[of] == 1 => of,
                _ => continue,
            };
            let Some(conv) = producer.get(&written).map(|&i| &self.steps[i]) else {
                continue;
            };
            let Step::Conv { geometry, .. } = conv else {
                continue;
            };
            let same_rows = geometry.out_channels == rows.count && geometry.out_hw[0] * geometry.out_hw[1] == rows.len;
            let concat_root = self.root(*output).0;
            let reads_concat = (conv.inputs().iter()).any(|&v| self.root(v).0 == concat_root);
            // The rows are counted from the concat's storage, so it must be contiguous in it.
            let concat_is_contiguous = !self.in_rows(*output);
            if same_rows
                && readers[*input] == 1
                && matches!(self.values[written].home, Home::Own)
                && !reads_concat
                && concat_is_contiguous
            {
                self.values[written].home = Home::Rows {
                    of: *output,
                    offset: write.offset,
                    apart: rows.apart,
                };
                placed.push(index);
            }
        }
        remove_steps(&mut self.steps, &placed);
    }

    /// A sigmoid whose input only convolutions write (whole, or as members placed in it) and
    /// nothing else reads runs in those convolutions' epilogue, and its input becomes a view of
    /// its output: the head's class scores then cost no pass of their own.
    fn fuse_sigmoid_into_convs(&mut self) {
        loop {
            let readers = self.readers();
            let producer = self.producers();
            let plain_conv = |value: ValueId| {
                producer.get(&value).copied().filter(|&i| {
                    matches!(
                        self.steps[i],
                        Step::Conv {
                            activation: Activation::None,
                            ..
                        }
                    )
                })
            };
            let found = self.steps.iter().enumerate().find_map(|(index, step)| {
                let Step::Unary {
                    input: x,
                    output: y,
                    activation: Activation::Sigmoid,
                } = *step
                else {
                    return None;
                };
                let read_by_steps = (self.steps.iter()).filter(|s| s.inputs().contains(&x)).count();
                let fits = matches!(self.values[x].home, Home::Own)
                    && !self.outputs.contains(&x)
                    && read_by_steps == 1
                    && !self.in_rows(y);
                if !fits {
                    return None;
                }
                // Everything stored in x: a convolution's member nothing reads, else no fusion.
                let members = (0..self.values.len())
                    .filter(|&v| matches!(self.values[v].home, Home::In { of, .. } | Home::Rows { of, .. } if of == x));
                let mut convs = Vec::new();
                for member in members {
                    convs.push(plain_conv(member).filter(|_| readers[member] == 0)?);
                }
                if producer.contains_key(&x) {
                    convs.push(plain_conv(x)?);
                }
                (!convs.is_empty()).then_some((index, x, y, convs))
            });
            let Some((unary, x, y, convs)) = found else {
                return;
            };
            for conv in convs {
                if let Step::Conv { activation, .. } = &mut self.steps[conv] {
                    *activation = Activation::Sigmoid;
                }
            }
            self.values[x].home = Home::In { of: y, offset: 0 };
            remove_steps(&mut self.steps, &[unary]);
        }
    }

    /// A copy (a transpose, a slice) whose output only a softmax reads is folded into the
    /// softmax's reads: the DFL head transposes its box distributions before their softmax.
    fn fold_transposes_into_softmax(&mut self) {
        loop {
            let readers = self.readers();
            let producer = self.producers();
            let found = self.steps.iter().enumerate().find_map(|(index, step)| {
                let Step::Softmax { input, read, .. } = step else {
                    return None;
                };
                let copy = *producer.get(input)?;
                let Step::Copy {
                    input: source,
                    read: copied,
                    write,
                    shape,
                    ..
                } = &self.steps[copy]
                else {
                    return None;
                };
                let whole = *shape == self.values[*input].shape && *write == Destination::plain(shape);
                let foldable = *read == Addressing::plain(shape)
                    && whole
                    && copied.divisors.iter().all(|d| *d == 1)
                    && readers[*input] == 1
                    && matches!(self.values[*input].home, Home::Own);
                foldable.then(|| (index, copy, *source, copied.clone()))
            });
            let Some((softmax, copy, source, copied)) = found else {
                return;
            };
            if let Step::Softmax { input, read, .. } = &mut self.steps[softmax] {
                *input = source;
                *read = copied;
            }
            remove_steps(&mut self.steps, &[copy]);
        }
    }

    /// Reads slices and transposes that only products and element-wise steps read through those
    /// steps' own operand strides instead of copying them first (YOLO11's attention: q, k and v
    /// are channel slices of one convolution's output, and q is transposed for its product). A
    /// copy that would change how an operand is walked along the output's innermost axis stays:
    /// neighbouring threads walk that axis, and the copy keeps their reads together.
    fn fold_copies_into_operands(&mut self) {
        loop {
            let readers = self.readers();
            let found = self.steps.iter().enumerate().find_map(|(index, step)| {
                let Step::Copy {
                    input,
                    read,
                    output,
                    write,
                    shape,
                } = step
                else {
                    return None;
                };
                let plain = *shape == self.values[*output].shape
                    && *write == Destination::plain(shape)
                    && read.divisors.iter().all(|d| *d == 1)
                    && matches!(self.values[*output].home, Home::Own)
                    && !self.in_rows(*input);
                if !plain {
                    return None;
                }
                let mut rewritten = Vec::new();
                let mut uses = 0;
                for (at, reader) in self.steps.iter().enumerate() {
                    if !reader.inputs().contains(output) {
                        continue;
                    }
                    let folded = match reader {
                        Step::MatMul {
                            a,
                            b,
                            summed,
                            output: out,
                        } => {
                            let shape_out = &self.values[*out].shape;
                            let mut fold = |operand: &Operand, stride: usize| {
                                if operand.value != *output {
                                    return Some((operand.clone(), stride));
                                }
                                uses += 1;
                                let operand = through_copy(operand, shape_out, *input, shape, read)?;
                                Some((operand, through_copy_stride(stride, summed.len, shape, read)?))
                            };
                            let (a, a_stride) = fold(a, summed.a_stride)?;
                            let (b, b_stride) = fold(b, summed.b_stride)?;
                            let summed = SummedAxis {
                                len: summed.len,
                                a_stride,
                                b_stride,
                            };
                            Step::MatMul {
                                a,
                                b,
                                summed,
                                output: *out,
                            }
                        }
                        // A step reading where it writes checks the whole input for overlap:
                        // the copy's input may lie in the same storage as its output.
                        Step::Binary { op, a, b, output: out } if self.root(*input).0 != self.root(*out).0 => {
                            let shape_out = &self.values[*out].shape;
                            let mut fold = |operand: &Operand| {
                                if operand.value != *output {
                                    return Some(operand.clone());
                                }
                                uses += 1;
                                through_copy(operand, shape_out, *input, shape, read)
                            };
                            Step::Binary {
                                op: *op,
                                a: fold(a)?,
                                b: fold(b)?,
                                output: *out,
                            }
                        }
                        _ => return None,
                    };
                    rewritten.push((at, folded));
                }
                // Read by nothing else: no view of it, and not a graph output.
                (uses == readers[*output]).then_some((index, rewritten))
            });
            let Some((copy, rewritten)) = found else {
                return;
            };
            for (at, step) in rewritten {
                self.steps[at] = step;
            }
            remove_steps(&mut self.steps, &[copy]);
        }
    }

    /// Whether `value` or a value holding it has rows apart (`Home::Rows`), so that it is not
    /// contiguous in its root's storage.
    pub fn in_rows(&self, mut value: ValueId) -> bool {
        loop {
            match self.values[value].home {
                Home::Rows { .. } => return true,
                Home::In { of, .. } => value = of,
                _ => return false,
            }
        }
    }
}

/// `operand`, which reads the whole, contiguous output of a copy (`shape` read from `source`
/// through `read`) for an output of `out_shape`, rewritten to read `source` itself; `None` when
/// one of its strides does not walk a single axis of the copy, or when it would walk the
/// output's innermost axis differently.
fn through_copy(
    operand: &Operand,
    out_shape: &[usize],
    source: ValueId,
    shape: &[usize],
    read: &Addressing,
) -> Option<Operand> {
    if operand.offset != 0 {
        return None;
    }
    let strides: Vec<usize> = (operand.strides.iter().zip(out_shape))
        .map(|(&stride, &len)| through_copy_stride(stride, len, shape, read))
        .collect::<Option<_>>()?;
    let innermost_kept = out_shape.last().is_none_or(|&len| len == 1) || operand.strides.last() == strides.last();
    innermost_kept.then_some(Operand {
        value: source,
        offset: read.offset,
        strides,
    })
}

/// The stride in a copy's source that walks what `stride` walks, `len` times, in the copy's
/// contiguous output of `shape`: the copy's read stride of the one axis it steps along.
fn through_copy_stride(stride: usize, len: usize, shape: &[usize], read: &Addressing) -> Option<usize> {
    if stride == 0 || len == 1 {
        return Some(0);
    }
    let dense = contiguous_strides(shape);
    (0..shape.len())
        .find(|&axis| shape[axis] > 1 && dense[axis] == stride && len <= shape[axis])
        .map(|axis| read.strides[axis])
}

/// A copy that moves a whole contiguous `[count, len]` tensor (unit axes aside) into rows
/// `apart` elements apart: a member of a concat along the last axis.
struct RowMember {
    count: usize,
    len: usize,
    apart: usize,
}

impl RowMember {
    fn of(read: &Addressing, write: &Destination, shape: &[usize]) -> Option<Self> {
        let rank = shape.len();
        if rank < 2 || shape[..rank - 2].iter().any(|d| *d != 1) {
            return None;
        }
        let (count, len) = (shape[rank - 2], shape[rank - 1]);
        let plain_read = read.offset == 0
            && read.divisors.iter().all(|d| *d == 1)
            && (count == 1 || read.strides[rank - 2] == len)
            && (len == 1 || read.strides[rank - 1] == 1);
        let apart = write.strides[rank - 2];
        // Rows one after another are a contiguous member, which `place_concat_members` places.
        let rows = count > 1 && len > 1 && write.strides[rank - 1] == 1 && apart > len;
        (plain_read && rows).then_some(Self { count, len, apart })
    }
}

/// A slice of a value copied whole into a concat.
struct SplitMember {
    /// The copy step.
    copy: usize,
    /// Where the slice starts in the value.
    in_value: usize,
    /// Where the copy writes it in the concat.
    in_concat: usize,
    len: usize,
}

/// A copy that moves a whole contiguous tensor into a contiguous run of the output (a concat
/// along an axis with only unit axes before it).
fn is_concat_copy(read: &Addressing, write: &Destination, shape: &[usize]) -> bool {
    // Axes of length 1 (the batch) never move, whatever their stride says.
    let contiguous = contiguous_strides(shape);
    let same_along = |strides: &[usize]| {
        (shape.iter().zip(strides).zip(&contiguous)).all(|((len, stride), plain)| *len == 1 || stride == plain)
    };
    read.offset == 0 && read.divisors.iter().all(|d| *d == 1) && same_along(&read.strides) && same_along(&write.strides)
}

fn remove_steps(steps: &mut Vec<Step>, indices: &[usize]) {
    let mut indices = indices.to_vec();
    indices.sort_unstable();
    for index in indices.into_iter().rev() {
        steps.remove(index);
    }
}

/// C-order strides of a shape, in elements.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// What a tract outlet is while lowering.
#[derive(Clone)]
enum Known {
    Const(Arc<Tensor>),
    Runtime(ValueId),
}

struct Lowering<'m> {
    model: &'m TypedModel,
    graph: Graph,
    known: HashMap<OutletId, Known>,
    /// Constants already uploaded, by the tensor's address, so shared weights upload once.
    uploaded: HashMap<*const Tensor, ValueId>,
}

impl<'m> Lowering<'m> {
    fn new(model: &'m TypedModel) -> Self {
        Self {
            model,
            graph: Graph {
                values: Vec::new(),
                steps: Vec::new(),
                input: 0,
                outputs: Vec::new(),
            },
            known: HashMap::new(),
            uploaded: HashMap::new(),
        }
    }

    fn run(mut self) -> Result<Graph, Unsupported> {
        let order = self.model.eval_order().map_err(|e| unsupported_model(&e))?;
        for id in order {
            self.lower_node(&self.model.nodes()[id])?;
        }
        let outputs = self.model.output_outlets().map_err(|e| unsupported_model(&e))?.to_vec();
        for outlet in outputs {
            let value = match self.known.get(&outlet).cloned() {
                Some(Known::Runtime(value)) => value,
                _ => {
                    return Err(Unsupported {
                        node: self.model.node(outlet.node).name.clone(),
                        what: "an output that does not depend on the input".into(),
                    });
                }
            };
            self.graph.outputs.push(value);
        }
        Ok(self.graph)
    }

    fn lower_node(&mut self, node: &TypedNode) -> Result<(), Unsupported> {
        let refuse = |what: String| Unsupported {
            node: node.name.clone(),
            what,
        };
        let fact = self
            .model
            .outlet_fact(node.id.into())
            .map_err(|e| refuse(format!("unreadable output: {e}")))?;
        if node.op_is::<TypedSource>() {
            let shape = concrete_shape(fact).ok_or_else(|| refuse("an input of unknown shape".into()))?;
            if fact.datum_type != f32::datum_type() {
                return Err(refuse(format!("a {:?} input", fact.datum_type)));
            }
            let value = self.graph.new_value(shape, Home::Input);
            self.graph.input = value;
            self.known.insert(node.id.into(), Known::Runtime(value));
            return Ok(());
        }
        if let Some(konst) = &fact.konst
            && node.outputs.len() == 1
        {
            self.known.insert(node.id.into(), Known::Const(konst.clone()));
            return Ok(());
        }
        let inputs: Vec<Known> = node
            .inputs
            .iter()
            .map(|i| {
                self.known
                    .get(i)
                    .cloned()
                    .ok_or_else(|| refuse("an input computed out of order".into()))
            })
            .collect::<Result<_, _>>()?;
        let constants: Option<Vec<Arc<Tensor>>> = (inputs.iter())
            .map(|k| match k {
                Known::Const(t) => Some(t.clone()),
                Known::Runtime(_) => None,
            })
            .collect();
        if let Some(constants) = constants {
            return self.fold(node, constants);
        }
        for (slot, outlet) in node.outputs.iter().enumerate() {
            if outlet.fact.datum_type != f32::datum_type() {
                return Err(refuse(format!(
                    "{} gives {:?}; the GPU executor computes in f32",
                    node.op().name(),
                    outlet.fact.datum_type
                )));
            }
            if concrete_shape(&outlet.fact).is_none() {
                return Err(refuse(format!("output {slot} has a symbolic shape")));
            }
        }
        let out_shape = concrete_shape(fact).ok_or_else(|| refuse("a symbolic shape".into()))?;
        let input_shape = |i: usize| -> Vec<usize> {
            match &inputs[i] {
                Known::Runtime(v) => self.graph.values[*v].shape.clone(),
                Known::Const(t) => t.shape().to_vec(),
            }
        };
        let runtime = |i: usize| -> Result<ValueId, Unsupported> {
            match &inputs[i] {
                Known::Runtime(v) => Ok(*v),
                Known::Const(_) => Err(refuse(format!("{} with a constant data input", node.op().name()))),
            }
        };

        let output = if let Some(conv) = node.op_as::<Conv>() {
            let geometry = conv_geometry(conv, &input_shape(0), &out_shape).map_err(refuse)?;
            let (Known::Const(weights), Known::Const(bias)) = (&inputs[1], &inputs[2]) else {
                return Err(refuse("a convolution whose weights are computed".into()));
            };
            let weights = self.upload(weights).map_err(refuse)?;
            let bias = self.upload_broadcast(bias, geometry.out_channels).map_err(refuse)?;
            let output = self.graph.new_value(out_shape, Home::Own);
            self.graph.steps.push(Step::Conv {
                input: runtime(0)?,
                weights,
                bias,
                output,
                geometry,
                activation: Activation::None,
            });
            output
        } else if let Some(binary) = node.op_as::<TypedBinOp>() {
            let op = match binary.0.name() {
                "Add" => BinaryOp::Add,
                "Sub" => BinaryOp::Sub,
                "Mul" => BinaryOp::Mul,
                "Div" => BinaryOp::Div,
                other => return Err(refuse(format!("the binary operator {other}"))),
            };
            let a = self.operand(&inputs[0], &out_shape).map_err(refuse)?;
            let b = self.operand(&inputs[1], &out_shape).map_err(refuse)?;
            let output = self.graph.new_value(out_shape, Home::Own);
            self.graph.steps.push(Step::Binary { op, a, b, output });
            output
        } else if let Some(element_wise) = node.op_as::<ElementWiseOp>() {
            let activation = match element_wise.0.name().as_ref() {
                "Sigmoid" => Activation::Sigmoid,
                "Silu" => Activation::Silu,
                other => return Err(refuse(format!("the element-wise operator {other}"))),
            };
            let output = self.graph.new_value(out_shape, Home::Own);
            self.graph.steps.push(Step::Unary {
                input: runtime(0)?,
                output,
                activation,
            });
            output
        } else if let Some(axis_op) = node.op_as::<AxisOp>() {
            let input = runtime(0)?;
            match axis_op {
                AxisOp::Move(from, to) => {
                    let shape = input_shape(0);
                    let mut permutation: Vec<usize> = (0..shape.len()).collect();
                    let moved = permutation.remove(*from);
                    permutation.insert(*to, moved);
                    self.transpose(input, &shape, &permutation, out_shape)
                }
                _ => self.graph.new_value(out_shape, Home::In { of: input, offset: 0 }),
            }
        } else if node.op_is::<Cast>() {
            self.graph.new_value(
                out_shape,
                Home::In {
                    of: runtime(0)?,
                    offset: 0,
                },
            )
        } else if let Some(slice) = node.op_as::<Slice>() {
            let (start, end) = match (slice.start.to_i64(), slice.end.to_i64()) {
                (Ok(start), Ok(end)) if 0 <= start && start <= end => (start as usize, end as usize),
                _ => return Err(refuse("a slice with symbolic bounds".into())),
            };
            self.slice(runtime(0)?, &input_shape(0), slice.axis, start, end)
        } else if let Some(strided) = node.op_as::<StridedSlice>() {
            let (start, step) = strided_slice_bounds(strided, &input_shape(0), &inputs).map_err(refuse)?;
            self.strided_slice(runtime(0)?, &input_shape(0), &start, &step, out_shape)
        } else if let Some(concat) = node.op_as::<TypedConcat>() {
            let output = self.graph.new_value(out_shape.clone(), Home::Own);
            let out_strides = contiguous_strides(&out_shape);
            let mut start = 0;
            for known in &inputs {
                let member = match known {
                    Known::Runtime(v) => *v,
                    Known::Const(t) => self.upload(t).map_err(refuse)?,
                };
                let shape = self.graph.values[member].shape.clone();
                self.graph.steps.push(Step::Copy {
                    input: member,
                    read: Addressing::plain(&shape),
                    output,
                    write: Destination {
                        offset: start * out_strides[concat.axis],
                        strides: out_strides.clone(),
                    },
                    shape: shape.clone(),
                });
                start += shape[concat.axis];
            }
            output
        } else if let Some(pool) = node.op_as::<MaxPool>() {
            if pool.with_index_outputs.is_some() {
                return Err(refuse("MaxPool with indices".into()));
            }
            let geometry = pool_geometry(&pool.pool_spec, &input_shape(0), &out_shape).map_err(refuse)?;
            let output = self.graph.new_value(out_shape, Home::Own);
            self.graph.steps.push(Step::MaxPool {
                input: runtime(0)?,
                output,
                geometry,
            });
            output
        } else if let Some(softmax) = node.op_as::<Softmax>() {
            let [axis] = softmax.axes.as_slice() else {
                return Err(refuse("a softmax over several axes".into()));
            };
            if softmax.kind != SoftmaxKind::Softmax || softmax.quant_output_dt.is_some() {
                return Err(refuse(format!("{:?}", softmax.kind)));
            }
            let read = Addressing::plain(&input_shape(0));
            let output = self.graph.new_value(out_shape, Home::Own);
            self.graph.steps.push(Step::Softmax {
                input: runtime(0)?,
                read,
                output,
                axis: *axis,
            });
            output
        } else if let Some(einsum) = node.op_as::<EinSum>() {
            if einsum.q_params.is_some() || einsum.operating_dt != f32::datum_type() || inputs.len() != 2 {
                return Err(refuse(format!(
                    "the einsum {} outside f32 products of two operands",
                    einsum.axes
                )));
            }
            let (a, b, summed) = self.product(einsum, &inputs, &out_shape).map_err(refuse)?;
            let output = self.graph.new_value(out_shape, Home::Own);
            self.graph.steps.push(Step::MatMul { a, b, summed, output });
            output
        } else if let Some(resize) = node.op_as::<Resize>() {
            let nearest_floor = resize.interpolator == Interpolator::Nearest
                && resize.coord_transformer == CoordTransform::Plain(CoordTransformer::Asymmetric)
                && resize.nearest == Nearest::Floor;
            if !nearest_floor {
                return Err(refuse("Resize other than nearest (asymmetric, floor)".into()));
            }
            self.upsample(runtime(0)?, &input_shape(0), out_shape).map_err(refuse)?
        } else if node.op_is::<NearestUpsample>() {
            self.upsample(runtime(0)?, &input_shape(0), out_shape).map_err(refuse)?
        } else {
            return Err(refuse(format!("the operator {}", node.op().name())));
        };
        self.known.insert(node.id.into(), Known::Runtime(output));
        Ok(())
    }

    /// Evaluates a node whose inputs are all constants, on the CPU, once.
    fn fold(&mut self, node: &TypedNode, inputs: Vec<Arc<Tensor>>) -> Result<(), Unsupported> {
        let values: TVec<TValue> = inputs.into_iter().map(|t| t.into_tvalue()).collect();
        let outputs = node
            .op
            .eval_out_of_plan(values)
            .ok()
            .flatten()
            .ok_or_else(|| Unsupported {
                node: node.name.clone(),
                what: format!("{} on constants cannot be computed ahead", node.op().name()),
            })?;
        for (slot, value) in outputs.into_iter().enumerate() {
            self.known
                .insert(OutletId::new(node.id, slot), Known::Const(value.into_arc_tensor()));
        }
        Ok(())
    }

    /// A constant as a GPU value (uploaded once however often it is used).
    fn upload(&mut self, tensor: &Arc<Tensor>) -> Result<ValueId, String> {
        let key = Arc::as_ptr(tensor);
        if let Some(value) = self.uploaded.get(&key) {
            return Ok(*value);
        }
        let data = f32_data(tensor)?;
        let value = self.graph.new_value(tensor.shape().to_vec(), Home::Const(data));
        self.uploaded.insert(key, value);
        Ok(value)
    }

    /// A bias of `len` values from a constant of that length or a scalar.
    fn upload_broadcast(&mut self, tensor: &Arc<Tensor>, len: usize) -> Result<ValueId, String> {
        let data = f32_data(tensor)?;
        let data = match data.len() {
            n if n == len => data,
            1 => vec![data[0]; len],
            n => return Err(format!("a bias of {n} values for {len} channels")),
        };
        Ok(self.graph.new_value(vec![len], Home::Const(data)))
    }

    /// An element-wise operand, right-aligned against the output shape (NumPy broadcasting).
    fn operand(&mut self, known: &Known, out_shape: &[usize]) -> Result<Operand, String> {
        let value = match known {
            Known::Runtime(v) => *v,
            Known::Const(t) => self.upload(t)?,
        };
        let shape = &self.graph.values[value].shape;
        if shape.len() > out_shape.len() {
            return Err(format!(
                "an operand of rank {} for an output of rank {}",
                shape.len(),
                out_shape.len()
            ));
        }
        let own = contiguous_strides(shape);
        let lead = out_shape.len() - shape.len();
        let strides = (0..out_shape.len())
            .map(|axis| {
                if axis < lead || shape[axis - lead] == 1 {
                    0
                } else {
                    own[axis - lead]
                }
            })
            .collect();
        Ok(Operand {
            value,
            offset: 0,
            strides,
        })
    }

    /// An einsum of two operands as one product: per output axis each operand's stride (0
    /// where the axis is not its own or it broadcasts), and the one axis summed over.
    fn product(
        &mut self,
        einsum: &EinSum,
        inputs: &[Known],
        out_shape: &[usize],
    ) -> Result<(Operand, Operand, SummedAxis), String> {
        let mut values = [0; 2];
        for (slot, known) in inputs.iter().enumerate() {
            values[slot] = match known {
                Known::Runtime(v) => *v,
                Known::Const(t) => self.upload(t)?,
            };
        }
        let shapes = values.map(|v| self.graph.values[v].shape.clone());
        let own_strides = shapes.clone().map(|shape| contiguous_strides(&shape));
        let mut strides = [vec![0; out_shape.len()], vec![0; out_shape.len()]];
        let mut summed = None;
        for axis in einsum.axes.iter_all_axes() {
            let position = |positions: &[usize]| -> Result<Option<usize>, String> {
                match positions {
                    [] => Ok(None),
                    [one] => Ok(Some(*one)),
                    _ => Err(format!("the einsum {} (a repeated axis)", einsum.axes)),
                }
            };
            let in_operand = [position(&axis.inputs[0])?, position(&axis.inputs[1])?];
            // An operand's stride along this axis, 0 where it has length 1 (broadcast).
            let stride = |slot: usize| {
                in_operand[slot].map_or(0, |at| {
                    if shapes[slot][at] == 1 {
                        0
                    } else {
                        own_strides[slot][at]
                    }
                })
            };
            match position(&axis.outputs[0])? {
                Some(at) => {
                    strides[0][at] = stride(0);
                    strides[1][at] = stride(1);
                }
                None => {
                    let (Some(at_a), Some(at_b)) = (in_operand[0], in_operand[1]) else {
                        return Err(format!("the einsum {} (a sum within one operand)", einsum.axes));
                    };
                    if summed.is_some() {
                        return Err(format!("the einsum {} (several summed axes)", einsum.axes));
                    }
                    summed = Some(SummedAxis {
                        len: shapes[0][at_a].max(shapes[1][at_b]),
                        a_stride: stride(0),
                        b_stride: stride(1),
                    });
                }
            }
        }
        let [a_strides, b_strides] = strides;
        Ok((
            Operand {
                value: values[0],
                offset: 0,
                strides: a_strides,
            },
            Operand {
                value: values[1],
                offset: 0,
                strides: b_strides,
            },
            // No summed axis: an outer product, one term each.
            summed.unwrap_or(SummedAxis {
                len: 1,
                a_stride: 0,
                b_stride: 0,
            }),
        ))
    }

    fn transpose(&mut self, input: ValueId, shape: &[usize], permutation: &[usize], out_shape: Vec<usize>) -> ValueId {
        let in_strides = contiguous_strides(shape);
        let strides = permutation.iter().map(|&axis| in_strides[axis]).collect();
        self.copy(input, Addressing::strided(0, strides), out_shape)
    }

    /// A slice: a view when only unit axes come before `axis` (a channel slice of one image),
    /// else a copy.
    fn slice(&mut self, input: ValueId, shape: &[usize], axis: usize, start: usize, end: usize) -> ValueId {
        let strides = contiguous_strides(shape);
        let mut out_shape = shape.to_vec();
        out_shape[axis] = end - start;
        if shape[..axis].iter().all(|d| *d == 1) {
            return self.graph.new_value(
                out_shape,
                Home::In {
                    of: input,
                    offset: start * strides[axis],
                },
            );
        }
        self.copy(input, Addressing::strided(start * strides[axis], strides), out_shape)
    }

    /// A slice with a start and a step on each axis: a view when it is one plain slice, else a
    /// copy.
    fn strided_slice(
        &mut self,
        input: ValueId,
        shape: &[usize],
        start: &[usize],
        step: &[usize],
        out_shape: Vec<usize>,
    ) -> ValueId {
        let changed: Vec<usize> = (0..shape.len()).filter(|&a| out_shape[a] != shape[a]).collect();
        if let ([axis], true) = (changed.as_slice(), step.iter().all(|s| *s == 1)) {
            return self.slice(input, shape, *axis, start[*axis], start[*axis] + out_shape[*axis]);
        }
        let strides = contiguous_strides(shape);
        let offset = start.iter().zip(&strides).map(|(s, t)| s * t).sum();
        let strides = strides.iter().zip(step).map(|(t, s)| t * s).collect();
        self.copy(input, Addressing::strided(offset, strides), out_shape)
    }

    /// Nearest upsampling by whole factors: each output element reads input element `i / f`.
    fn upsample(&mut self, input: ValueId, shape: &[usize], out_shape: Vec<usize>) -> Result<ValueId, String> {
        if shape.len() != out_shape.len() || shape.iter().zip(&out_shape).any(|(i, o)| *i == 0 || o % i != 0) {
            return Err(format!("resizing {shape:?} to {out_shape:?} is not by whole factors"));
        }
        let read = Addressing {
            offset: 0,
            strides: contiguous_strides(shape),
            divisors: shape.iter().zip(&out_shape).map(|(i, o)| o / i).collect(),
        };
        Ok(self.copy(input, read, out_shape))
    }

    /// A new tensor of `out_shape` filled by reading `input` through `read`.
    fn copy(&mut self, input: ValueId, read: Addressing, out_shape: Vec<usize>) -> ValueId {
        let output = self.graph.new_value(out_shape.clone(), Home::Own);
        self.graph.steps.push(Step::Copy {
            input,
            read,
            output,
            write: Destination::plain(&out_shape),
            shape: out_shape,
        });
        output
    }
}

impl Addressing {
    /// Reads along `strides` from `offset`, each element once.
    pub fn strided(offset: usize, strides: Vec<usize>) -> Self {
        Self {
            offset,
            divisors: vec![1; strides.len()],
            strides,
        }
    }

    /// A whole contiguous tensor from its start.
    pub fn plain(shape: &[usize]) -> Self {
        Self::strided(0, contiguous_strides(shape))
    }
}

impl Destination {
    /// A whole contiguous tensor from its start.
    pub fn plain(shape: &[usize]) -> Self {
        Self {
            offset: 0,
            strides: contiguous_strides(shape),
        }
    }
}

/// Where an ONNX-style strided slice starts on each axis and its step there (constant
/// bounds, positive steps, no TensorFlow masks).
fn strided_slice_bounds(
    op: &StridedSlice,
    shape: &[usize],
    inputs: &[Known],
) -> Result<(Vec<usize>, Vec<usize>), String> {
    if op.begin_mask != 0 || op.end_mask != 0 || op.shrink_axis_mask != 0 {
        return Err("a strided slice with masks".into());
    }
    let ints = |index: usize| -> Result<Vec<i64>, String> {
        match inputs.get(index) {
            Some(Known::Const(t)) => {
                let cast = t.cast_to::<i64>().map_err(|e| e.to_string())?;
                let plain = cast.try_as_plain_ram().map_err(|e| e.to_string())?;
                Ok(plain.as_slice::<i64>().map_err(|e| e.to_string())?.to_vec())
            }
            _ => Err("a strided slice with computed bounds".into()),
        }
    };
    let begin = ints(1)?;
    let rank = shape.len() as i64;
    let axes = match op.optional_axes_input {
        Some(index) => ints(index)?,
        None => (0..begin.len() as i64).collect(),
    };
    let steps = match op.optional_steps_input {
        Some(index) => ints(index)?,
        None => vec![1; begin.len()],
    };
    let mut start = vec![0; shape.len()];
    let mut step = vec![1; shape.len()];
    for ((axis, first), by) in axes.iter().zip(&begin).zip(&steps) {
        let axis = if *axis < 0 { axis + rank } else { *axis };
        if !(0..rank).contains(&axis) || *by <= 0 {
            return Err(format!("a strided slice on axis {axis} by {by}"));
        }
        let len = shape[axis as usize] as i64;
        let first = if *first < 0 { first + len } else { *first };
        start[axis as usize] = first.clamp(0, len) as usize;
        step[axis as usize] = *by as usize;
    }
    Ok((start, step))
}

fn unsupported_model(e: &TractError) -> Unsupported {
    Unsupported {
        node: "(graph)".into(),
        what: e.to_string(),
    }
}

fn concrete_shape(fact: &TypedFact) -> Option<Vec<usize>> {
    fact.shape.as_concrete().map(|s| s.to_vec())
}

fn f32_data(tensor: &Tensor) -> Result<Vec<f32>, String> {
    let cast = tensor
        .cast_to::<f32>()
        .map_err(|e| format!("a constant that is not numeric: {e}"))?;
    let plain = cast.try_as_plain_ram().map_err(|e| e.to_string())?;
    Ok(plain.as_slice::<f32>().map_err(|e| e.to_string())?.to_vec())
}

/// The image's `[C, H, W]` from a `[1, C, H, W]` or `[C, H, W]` shape.
fn image_chw(shape: &[usize], format: DataFormat) -> Result<[usize; 3], String> {
    match (format, shape) {
        (DataFormat::NCHW, [1, c, h, w]) | (DataFormat::CHW, [c, h, w]) => Ok([*c, *h, *w]),
        _ => Err(format!(
            "a {format:?} tensor of shape {shape:?} (one 2-D image expected)"
        )),
    }
}

fn pair(values: &[usize]) -> Result<[usize; 2], String> {
    match values {
        [a, b] => Ok([*a, *b]),
        other => Err(format!("{} spatial axes (2 expected)", other.len())),
    }
}

/// Padding before each spatial axis, as tract computes it for this input size.
fn pad_before(spec: &PoolSpec, in_hw: [usize; 2]) -> Result<[usize; 2], String> {
    let padded = spec.computed_padding(&in_hw);
    pair(&padded.iter().map(|p| p.pad_before).collect::<Vec<_>>())
}

fn conv_geometry(conv: &Conv, input: &[usize], output: &[usize]) -> Result<ConvGeometry, String> {
    if conv.q_params.is_some() {
        return Err("a quantized convolution".into());
    }
    if conv.kernel_fmt != KernelFormat::OIHW {
        return Err(format!("a convolution with {:?} weights", conv.kernel_fmt));
    }
    let spec = &conv.pool_spec;
    let [in_channels, ih, iw] = image_chw(input, spec.data_format)?;
    let [out_channels, oh, ow] = image_chw(output, spec.data_format)?;
    let in_hw = [ih, iw];
    Ok(ConvGeometry {
        in_channels,
        in_hw,
        out_channels,
        out_hw: [oh, ow],
        kernel: pair(&spec.kernel_shape)?,
        stride: pair(&spec.strides())?,
        dilation: pair(&spec.dilations())?,
        pad: pad_before(spec, in_hw)?,
        groups: conv.group,
    })
}

fn pool_geometry(spec: &PoolSpec, input: &[usize], output: &[usize]) -> Result<PoolGeometry, String> {
    let [channels, ih, iw] = image_chw(input, spec.data_format)?;
    let [_, oh, ow] = image_chw(output, spec.data_format)?;
    if spec.dilations().iter().any(|d| *d != 1) {
        return Err("a dilated max pool".into());
    }
    Ok(PoolGeometry {
        channels,
        in_hw: [ih, iw],
        out_hw: [oh, ow],
        kernel: pair(&spec.kernel_shape)?,
        stride: pair(&spec.strides())?,
        pad: pad_before(spec, [ih, iw])?,
    })
}
