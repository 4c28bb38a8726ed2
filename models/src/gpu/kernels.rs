//! The WGSL kernels and how a [`Step`] becomes one dispatch of one of them: its parameter words
//! and its workgroup counts. Buffers are bound whole; offsets travel in the parameters.

use super::graph::{Graph, Home, Operand, Step, ValueId};

/// Every kernel the executor has; one compute pipeline each, built when a model loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kernel {
    /// Tiled in workgroup memory, 64×64 output tiles (hardware GPUs).
    Conv,
    /// As `Conv` with 32×32 tiles: four times the workgroups, for convolutions too small to
    /// keep a GPU's compute units busy with 64-wide tiles.
    ConvTile32,
    /// Straight from storage (software adapters).
    ConvDirect,
    /// One input and one output channel per group, whatever the adapter.
    ConvDepthwise,
    Binary,
    Unary,
    Copy,
    MaxPool,
    Softmax,
    MatMul,
}

impl Kernel {
    pub const ALL: [Kernel; 10] = [
        Kernel::Conv,
        Kernel::ConvTile32,
        Kernel::ConvDirect,
        Kernel::ConvDepthwise,
        Kernel::Binary,
        Kernel::Unary,
        Kernel::Copy,
        Kernel::MaxPool,
        Kernel::Softmax,
        Kernel::MatMul,
    ];

    /// The kernel's WGSL for tensors stored as `precision`, with the shared helpers in front.
    pub fn source(self, precision: Precision) -> String {
        let body = match self {
            Kernel::Conv => concat!("const TILE: u32 = 64u;\n", include_str!("wgsl/conv.wgsl")),
            Kernel::ConvTile32 => concat!("const TILE: u32 = 32u;\n", include_str!("wgsl/conv.wgsl")),
            Kernel::ConvDirect => include_str!("wgsl/conv_direct.wgsl"),
            Kernel::ConvDepthwise => include_str!("wgsl/conv_depthwise.wgsl"),
            Kernel::Binary => include_str!("wgsl/binary.wgsl"),
            Kernel::Unary => include_str!("wgsl/unary.wgsl"),
            Kernel::Copy => include_str!("wgsl/copy.wgsl"),
            Kernel::MaxPool => include_str!("wgsl/maxpool.wgsl"),
            Kernel::Softmax => include_str!("wgsl/softmax.wgsl"),
            Kernel::MatMul => include_str!("wgsl/matmul.wgsl"),
        };
        let element = match precision {
            Precision::F32 => "alias elem = f32;",
            // `enable` must come before any declaration.
            Precision::F16 => "enable f16;\nalias elem = f16;",
        };
        format!("{element}\n{}\n{body}", include_str!("wgsl/common.wgsl"))
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Conv => "conv",
            Kernel::ConvTile32 => "conv-tile32",
            Kernel::ConvDirect => "conv-direct",
            Kernel::ConvDepthwise => "conv-depthwise",
            Kernel::Binary => "binary",
            Kernel::Unary => "unary",
            Kernel::Copy => "copy",
            Kernel::MaxPool => "maxpool",
            Kernel::Softmax => "softmax",
            Kernel::MatMul => "matmul",
        }
    }
}

/// Which convolution kernel a plan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// An implicit GEMM tiled in workgroup memory: for hardware GPUs.
    Tiled,
    /// Each thread straight from storage: for software adapters, which have no on-chip memory
    /// to stage tiles in (measured faster there, conv_direct.wgsl).
    Direct,
}

/// How a plan stores its tensors (weights, activations, input and outputs); kernels compute
/// in f32 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Four bytes per element, as tract and onnxruntime compute.
    #[default]
    F32,
    /// Half the bytes of f32, for devices with WebGPU's `shader-f16`: 11 significant bits, so
    /// results move by about 1e-3 relative (the conformance tests state the tolerance).
    F16,
}

impl Precision {
    /// Bytes per stored element.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

/// Axes the strided kernels walk; shapes of lower rank are padded in front with 1.
const MAX_RANK: usize = 6;

/// Workgroups a convolution needs to keep a mid-size GPU busy (one per compute unit of a
/// 64-unit part; laptops have fewer, large desktop parts over 100): one with fewer 64×64 tiles
/// — at 320 px every YOLOv8n layer from 40×40 on — takes 32×32 tiles, four times as many.
const BUSY_GPU_WORKGROUPS: usize = 64;

/// Threads per workgroup of the one-thread-per-element kernels.
const GROUP: usize = 256;

/// One step ready to encode: which kernel, its bindings' values in binding order (after the
/// parameters, which are binding 0), its parameter words and its workgroup counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dispatch {
    pub kernel: Kernel,
    pub bindings: Vec<usize>,
    pub params: Vec<u32>,
    pub workgroups: [u32; 3],
}

/// Why a step does not fit the kernels' limits.
pub(crate) type Refusal = String;

/// The dispatch that runs `step`; values are addressed from the start of their storage
/// (`Graph::root`).
pub(crate) fn dispatch(step: &Step, graph: &Graph, conv: ConvKernel) -> Result<Dispatch, Refusal> {
    let at = |value: usize| graph.root(value).1;
    // Only the convolution kernels address rows apart (`Home::Rows`), and only in their output.
    let conv_output = matches!(step, Step::Conv { .. }).then(|| step.output());
    let rows_apart =
        (step.inputs().into_iter().chain([step.output()])).any(|v| Some(v) != conv_output && graph.in_rows(v));
    if rows_apart {
        return Err("a step other than a convolution addressing a tensor stored in rows apart".into());
    }
    let words = |values: &[usize]| -> Result<Vec<u32>, Refusal> { values.iter().map(|v| word(*v)).collect() };
    Ok(match step {
        Step::Conv {
            input,
            weights,
            bias,
            output,
            geometry: g,
            activation,
        } => {
            let cin = g.in_channels / g.groups;
            let cout = g.out_channels / g.groups;
            let pixels = g.out_hw[0] * g.out_hw[1];
            // Where one output channel starts after the one before.
            let channels_apart = match graph.values[*output].home {
                Home::Rows { apart, .. } => apart,
                _ => pixels,
            };
            let mut params = words(&[
                cin,
                g.in_hw[0],
                g.in_hw[1],
                cout,
                g.out_hw[0],
                g.out_hw[1],
                g.kernel[0],
                g.kernel[1],
                g.stride[0],
                g.stride[1],
                g.dilation[0],
                g.dilation[1],
                g.pad[0],
                g.pad[1],
                *activation as usize,
                at(*input),
                at(*output),
                channels_apart,
            ])?;
            let depthwise = cin == 1 && cout == 1;
            let (kernel, workgroups) = match conv {
                _ if depthwise => {
                    params.push(word(g.groups)?);
                    (Kernel::ConvDepthwise, flat_grid(g.groups * pixels)?)
                }
                ConvKernel::Tiled => {
                    let tiles = |side: usize| [pixels.div_ceil(side), cout.div_ceil(side), g.groups];
                    if tiles(64).iter().product::<usize>() >= BUSY_GPU_WORKGROUPS {
                        (Kernel::Conv, conv_grid(tiles(64))?)
                    } else {
                        (Kernel::ConvTile32, conv_grid(tiles(32))?)
                    }
                }
                ConvKernel::Direct => (
                    Kernel::ConvDirect,
                    conv_grid([pixels.div_ceil(4 * 64), cout.div_ceil(4), g.groups])?,
                ),
            };
            let offsets_are_zero = at(*weights) == 0 && at(*bias) == 0;
            if !offsets_are_zero {
                return Err("convolution weights inside another tensor".into());
            }
            Dispatch {
                kernel,
                bindings: vec![*input, *weights, *bias, *output],
                params,
                workgroups,
            }
        }
        Step::Binary { op, a, b, output } => {
            let shape = &graph.values[*output].shape;
            let count = graph.values[*output].len();
            let (a_binding, a_in_output) = read_where_written(graph, a.value, *output)?;
            let (b_binding, b_in_output) = read_where_written(graph, b.value, *output)?;
            let mut params = words(&[
                count,
                *op as usize,
                at(*output),
                at(a.value) + a.offset,
                at(b.value) + b.offset,
            ])?;
            params.extend(two_operands(shape, a, b)?);
            params.extend([a_in_output as u32, b_in_output as u32]);
            Dispatch {
                kernel: Kernel::Binary,
                bindings: vec![a_binding, b_binding, *output],
                params,
                workgroups: flat_grid(count)?,
            }
        }
        Step::Unary {
            input,
            output,
            activation,
        } => {
            let count = graph.values[*output].len();
            Dispatch {
                kernel: Kernel::Unary,
                bindings: vec![*input, *output],
                params: words(&[count, *activation as usize, at(*input), at(*output)])?,
                workgroups: flat_grid(count)?,
            }
        }
        Step::Copy {
            input,
            read,
            output,
            write,
            shape,
        } => {
            let count: usize = shape.iter().product();
            let mut params = words(&[count, at(*input) + read.offset, at(*output) + write.offset])?;
            params.extend(padded(shape, 1)?);
            params.extend(padded(&read.strides, 0)?);
            params.extend(padded(&read.divisors, 1)?);
            params.extend(padded(&write.strides, 0)?);
            Dispatch {
                kernel: Kernel::Copy,
                bindings: vec![*input, *output],
                params,
                workgroups: flat_grid(count)?,
            }
        }
        Step::MaxPool {
            input,
            output,
            geometry: g,
        } => {
            let (input_binding, input_in_output) = read_where_written(graph, *input, *output)?;
            Dispatch {
                kernel: Kernel::MaxPool,
                bindings: vec![input_binding, *output],
                params: words(&[
                    g.channels,
                    g.in_hw[0],
                    g.in_hw[1],
                    g.out_hw[0],
                    g.out_hw[1],
                    g.kernel[0],
                    g.kernel[1],
                    g.stride[0],
                    g.stride[1],
                    g.pad[0],
                    g.pad[1],
                    at(*input),
                    at(*output),
                    input_in_output as usize,
                ])?,
                workgroups: flat_grid(g.channels * g.out_hw[0] * g.out_hw[1])?,
            }
        }
        Step::Softmax {
            input,
            read,
            output,
            axis,
        } => {
            let shape = &graph.values[*output].shape;
            if read.divisors.iter().any(|d| *d != 1) {
                return Err("a softmax reading repeated elements".into());
            }
            let lanes = graph.values[*output].len() / shape[*axis];
            let mut params = words(&[
                lanes,
                axis + MAX_RANK - shape.len(),
                at(*input) + read.offset,
                at(*output),
            ])?;
            params.extend(padded(shape, 1)?);
            params.extend(padded(&read.strides, 0)?);
            Dispatch {
                kernel: Kernel::Softmax,
                bindings: vec![*input, *output],
                params,
                workgroups: flat_grid(lanes)?,
            }
        }
        Step::MatMul { a, b, summed, output } => {
            let shape = &graph.values[*output].shape;
            let count = graph.values[*output].len();
            let mut params = words(&[
                count,
                at(*output),
                at(a.value) + a.offset,
                at(b.value) + b.offset,
                summed.len,
                summed.a_stride,
                summed.b_stride,
            ])?;
            params.extend(two_operands(shape, a, b)?);
            Dispatch {
                kernel: Kernel::MatMul,
                bindings: vec![a.value, b.value, *output],
                params,
                workgroups: flat_grid(count)?,
            }
        }
    })
}

/// How a step that reads where it writes (`Step::reads_where_it_writes`) binds an input: itself,
/// or — when it lies in the storage the step writes — the graph's input image as a stand-in
/// (read-only, never written by a step), with `true` telling the kernel to read it through its
/// output binding. The two may not overlap: every thread would race the others.
fn read_where_written(graph: &Graph, input: ValueId, output: ValueId) -> Result<(ValueId, bool), Refusal> {
    let (input_root, input_at) = graph.root(input);
    let (output_root, output_at) = graph.root(output);
    if input_root != output_root {
        return Ok((input, false));
    }
    let apart = input_at + graph.values[input].len() <= output_at || output_at + graph.values[output].len() <= input_at;
    if !apart {
        return Err("a step reading the part of a tensor it writes".into());
    }
    Ok((graph.input, true))
}

fn word(n: usize) -> Result<u32, Refusal> {
    u32::try_from(n).map_err(|_| format!("{n} does not fit the kernels' 32-bit indices"))
}

/// The words `two_operands` in common.wgsl reads: the output's shape, then each operand's
/// strides along it.
fn two_operands(shape: &[usize], a: &Operand, b: &Operand) -> Result<Vec<u32>, Refusal> {
    Ok([padded(shape, 1)?, padded(&a.strides, 0)?, padded(&b.strides, 0)?].concat())
}

/// A per-axis list padded in front to `MAX_RANK` entries with `fill`.
fn padded(values: &[usize], fill: usize) -> Result<Vec<u32>, Refusal> {
    if values.len() > MAX_RANK {
        return Err(format!("a tensor of rank {} (at most {MAX_RANK})", values.len()));
    }
    std::iter::repeat_n(fill, MAX_RANK - values.len())
        .chain(values.iter().copied())
        .map(word)
        .collect()
}

/// A convolution's 3-D grid, within WebGPU's 65535 workgroups per dimension.
fn conv_grid(grid: [usize; 3]) -> Result<[u32; 3], Refusal> {
    if grid.iter().any(|n| *n > 65535) {
        return Err(format!("a convolution grid of {grid:?} workgroups"));
    }
    Ok([word(grid[0])?, word(grid[1])?, word(grid[2])?])
}

/// Workgroups for `count` threads of 256, as a 2-D grid when one dimension is not enough.
fn flat_grid(count: usize) -> Result<[u32; 3], Refusal> {
    let groups = count.div_ceil(GROUP).max(1);
    let x = groups.min(65535);
    let y = groups.div_ceil(x);
    if y > 65535 {
        return Err(format!("{count} elements in one step"));
    }
    Ok([word(x)?, word(y)?, 1])
}
