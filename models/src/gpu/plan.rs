//! A lowered graph made concrete on one device: storage buffers shared between tensors whose
//! lifetimes do not overlap (an arena), weights uploaded once, every pipeline and bind group
//! built at load, so an inference is one input write, one compute pass, one submission and the
//! outputs' read-back.

use std::collections::{BTreeSet, HashMap};

use tract_onnx::prelude::f16;

use super::graph::{Graph, Home, ValueId};
use super::kernels::{ConvKernel, Dispatch, Kernel, Precision, dispatch};
use super::{GpuError, GpuStats};

/// Where one output is read back from: a window of whole 4-byte words (WebGPU copies no less),
/// of which the output is `len` elements after the first `skip`.
struct Readback {
    source: usize,
    offset: u64,
    bytes: u64,
    skip: usize,
    len: usize,
    staging: wgpu::Buffer,
}

/// A model compiled for one device.
pub(crate) struct Plan {
    device: wgpu::Device,
    queue: wgpu::Queue,
    precision: Precision,
    input: (usize, u64, usize),
    buffers: Vec<wgpu::Buffer>,
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    passes: Vec<(Kernel, wgpu::BindGroup, [u32; 3])>,
    outputs: Vec<Readback>,
    stats: GpuStats,
}

impl Plan {
    pub fn build(
        graph: &Graph,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        conv: ConvKernel,
        precision: Precision,
    ) -> Result<Self, GpuError> {
        let bytes = precision.bytes();
        let dispatches: Vec<Dispatch> = (graph.steps.iter())
            .map(|step| dispatch(step, graph, conv))
            .collect::<Result<_, _>>()
            .map_err(GpuError::Unsupported)?;
        let arena = Arena::assign(graph, &dispatches)?;

        let buffers: Vec<wgpu::Buffer> = (arena.sizes.iter().enumerate())
            .map(|(index, &len)| {
                let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("arena {index}")),
                    size: (len.max(1) as u64 * bytes).next_multiple_of(16),
                    usage,
                    mapped_at_creation: false,
                })
            })
            .collect();
        for (value, data) in graph.values.iter().enumerate().filter_map(|(i, v)| match &v.home {
            Home::Const(data) => Some((i, data)),
            _ => None,
        }) {
            queue.write_buffer(&buffers[arena.buffer_of[&value]], 0, &encode(data, precision));
        }

        let used: BTreeSet<Kernel> = dispatches.iter().map(|d| d.kernel).collect();
        let pipelines: HashMap<Kernel, wgpu::ComputePipeline> = used
            .into_iter()
            .map(|kernel| (kernel, pipeline(device, kernel, precision)))
            .collect();

        let passes = dispatches
            .iter()
            .map(|d| {
                let params = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size: (d.params.len() as u64 * 4).next_multiple_of(16),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                queue.write_buffer(&params, 0, bytemuck::cast_slice(&d.params));
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                }];
                for (slot, value) in d.bindings.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: slot as u32 + 1,
                        resource: buffers[arena.buffer_of[&graph.root(*value).0]].as_entire_binding(),
                    });
                }
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(d.kernel.name()),
                    layout: &pipelines[&d.kernel].get_bind_group_layout(0),
                    entries: &entries,
                });
                (d.kernel, group, d.workgroups)
            })
            .collect();

        let outputs = graph
            .outputs
            .iter()
            .map(|&value| {
                let (root, offset) = graph.root(value);
                let len = graph.values[value].len();
                let start = offset as u64 * bytes;
                let window = start - start % 4..(start + len as u64 * bytes).next_multiple_of(4);
                Readback {
                    source: arena.buffer_of[&root],
                    offset: window.start,
                    bytes: window.end - window.start,
                    skip: ((start - window.start) / bytes) as usize,
                    len,
                    staging: device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("read-back"),
                        size: window.end - window.start,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }),
                }
            })
            .collect();
        // The input has storage of its own (`Home::Input`, never placed inside another value),
        // so `encode`'s padding to a whole word lands in its buffer's own padding.
        let (input_root, input_offset) = graph.root(graph.input);
        let stats = GpuStats {
            dispatches: dispatches.len(),
            submissions: 1,
            arena_bytes: arena.sizes.iter().map(|n| *n as u64 * bytes).sum(),
            precision,
            kernels: kernel_counts(&dispatches),
        };
        Ok(Self {
            device: device.clone(),
            queue: queue.clone(),
            precision,
            input: (
                arena.buffer_of[&input_root],
                input_offset as u64 * bytes,
                graph.values[graph.input].len(),
            ),
            buffers,
            pipelines,
            passes,
            outputs,
            stats,
        })
    }

    pub fn stats(&self) -> &GpuStats {
        &self.stats
    }

    /// Runs the plan once on `input`. Calls must not overlap: they share the plan's buffers.
    pub async fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, GpuError> {
        let (buffer, offset, len) = self.input;
        if input.len() != len {
            return Err(GpuError::Run(format!(
                "an input of {} values, the model takes {len}",
                input.len()
            )));
        }
        self.queue
            .write_buffer(&self.buffers[buffer], offset, &encode(input, self.precision));
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("inference"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("inference"),
                timestamp_writes: None,
            });
            for (kernel, group, [x, y, z]) in &self.passes {
                pass.set_pipeline(&self.pipelines[kernel]);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*x, *y, *z);
            }
        }
        for output in &self.outputs {
            encoder.copy_buffer_to_buffer(
                &self.buffers[output.source],
                output.offset,
                &output.staging,
                0,
                output.bytes,
            );
        }
        self.queue.submit([encoder.finish()]);

        let mut waiting = Vec::new();
        for output in &self.outputs {
            let (done, wait) = futures_channel::oneshot::channel();
            output.staging.slice(..).map_async(wgpu::MapMode::Read, move |result| {
                let _ = done.send(result);
            });
            waiting.push(wait);
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Run(format!("the GPU did not finish: {e}")))?;
        let mut results = Vec::with_capacity(self.outputs.len());
        for (output, wait) in self.outputs.iter().zip(waiting) {
            wait.await
                .map_err(|_| GpuError::Run("the device went away".into()))?
                .map_err(|e| GpuError::Run(format!("cannot read the output back: {e}")))?;
            let values = {
                let view = output
                    .staging
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| GpuError::Run(format!("cannot read the output back: {e}")))?;
                decode(&view, self.precision, output.skip, output.len)
            };
            output.staging.unmap();
            results.push(values);
        }
        Ok(results)
    }
}

impl Plan {
    /// Runs the plan one dispatch per submission, waiting for each, and returns milliseconds
    /// per kernel (slowest first) with how many dispatches ran: where an inference's time goes.
    /// `now_ms` is the caller's clock (a browser has no `std::time`).
    pub async fn profile(
        &self,
        input: &[f32],
        now_ms: impl Fn() -> f64,
    ) -> Result<Vec<(String, f64, usize)>, GpuError> {
        let (buffer, offset, _) = self.input;
        self.queue
            .write_buffer(&self.buffers[buffer], offset, &encode(input, self.precision));
        self.wait().await?;
        let mut times: Vec<(String, f64, usize)> = Vec::new();
        for (kernel, group, [x, y, z]) in &self.passes {
            let started = now_ms();
            let mut encoder = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.pipelines[kernel]);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*x, *y, *z);
            }
            self.queue.submit([encoder.finish()]);
            self.wait().await?;
            let ms = now_ms() - started;
            match times.iter_mut().find(|t| t.0 == kernel.name()) {
                Some(t) => {
                    t.1 += ms;
                    t.2 += 1;
                }
                None => times.push((kernel.name().to_string(), ms, 1)),
            }
        }
        times.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(times)
    }

    /// Waits until the queue has done everything submitted so far.
    async fn wait(&self) -> Result<(), GpuError> {
        let (done, wait) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = done.send(());
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Run(format!("the GPU did not finish: {e}")))?;
        wait.await.map_err(|_| GpuError::Run("the device went away".into()))
    }
}

/// `values` as the plan stores them, padded to whole 4-byte words (queue writes are).
fn encode(values: &[f32], precision: Precision) -> Vec<u8> {
    let mut bytes: Vec<u8> = match precision {
        Precision::F32 => bytemuck::cast_slice(values).to_vec(),
        Precision::F16 => (values.iter()).flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
    };
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

/// `len` values after the first `skip` of a read-back window.
fn decode(window: &[u8], precision: Precision, skip: usize, len: usize) -> Vec<f32> {
    let element = precision.bytes() as usize;
    let values = window.chunks_exact(element).skip(skip).take(len);
    match precision {
        Precision::F32 => values.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Precision::F16 => values.map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
    }
}

fn pipeline(device: &wgpu::Device, kernel: Kernel, precision: Precision) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(kernel.name()),
        source: wgpu::ShaderSource::Wgsl(kernel.source(precision).into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(kernel.name()),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

fn kernel_counts(dispatches: &[Dispatch]) -> Vec<(String, usize)> {
    Kernel::ALL
        .iter()
        .map(|k| {
            (
                k.name().to_string(),
                dispatches.iter().filter(|d| d.kernel == *k).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Which storage buffer holds which value's storage, and how large each buffer is (elements).
struct Arena {
    buffer_of: HashMap<ValueId, usize>,
    sizes: Vec<usize>,
}

impl Arena {
    /// Input, constants and outputs get buffers of their own; every other stored value shares a
    /// buffer with values whose lifetimes (first to last step touching it) do not overlap, best
    /// fit first. A step never reads the buffer it writes: WebGPU forbids it in one dispatch.
    fn assign(graph: &Graph, dispatches: &[Dispatch]) -> Result<Self, GpuError> {
        let roots: Vec<ValueId> = (0..graph.values.len())
            .filter(|&v| !matches!(graph.values[v].home, Home::In { .. } | Home::Rows { .. }))
            .collect();
        let mut storage_len: HashMap<ValueId, usize> = roots.iter().map(|&r| (r, graph.values[r].len())).collect();
        for value in 0..graph.values.len() {
            // A value in rows apart (`Home::Rows`) reaches further than its length says, but
            // never past its concat, which is counted too.
            let (root, offset) = graph.root(value);
            let len = storage_len.entry(root).or_default();
            *len = (*len).max(offset + graph.values[value].len());
        }
        let pinned: BTreeSet<ValueId> = (roots.iter().copied())
            .filter(|&r| !matches!(graph.values[r].home, Home::Own))
            .chain(graph.outputs.iter().map(|&o| graph.root(o).0))
            .collect();

        let mut first = HashMap::new();
        let mut last = HashMap::new();
        for (index, d) in dispatches.iter().enumerate() {
            for value in &d.bindings {
                let root = graph.root(*value).0;
                first.entry(root).or_insert(index);
                last.insert(root, index);
            }
        }

        let mut buffer_of = HashMap::new();
        let mut sizes: Vec<usize> = Vec::new();
        for &root in &pinned {
            buffer_of.insert(root, sizes.len());
            sizes.push(storage_len[&root]);
        }
        let mut free: Vec<usize> = Vec::new();
        let mut live: Vec<(usize, usize)> = Vec::new(); // (last step, buffer)
        for index in 0..dispatches.len() {
            live.retain(|&(end, buffer)| {
                let done = end < index;
                if done {
                    free.push(buffer);
                }
                !done
            });
            let starting = (roots.iter()).filter(|r| !pinned.contains(r) && first.get(*r) == Some(&index));
            for &root in starting {
                let need = storage_len[&root];
                let fit = (free.iter().enumerate())
                    .filter(|(_, b)| sizes[**b] >= need)
                    .min_by_key(|(_, b)| sizes[**b])
                    .or_else(|| free.iter().enumerate().max_by_key(|(_, b)| sizes[**b]))
                    .map(|(slot, _)| slot);
                let buffer = match fit {
                    Some(slot) => free.swap_remove(slot),
                    None => {
                        sizes.push(0);
                        sizes.len() - 1
                    }
                };
                sizes[buffer] = sizes[buffer].max(need);
                buffer_of.insert(root, buffer);
                live.push((last[&root], buffer));
            }
        }

        for d in dispatches {
            let buffer = |v: &ValueId| buffer_of.get(&graph.root(*v).0).copied();
            let Some((written, read)) = d.bindings.split_last() else {
                continue;
            };
            if read.iter().any(|v| buffer(v) == buffer(written)) {
                return Err(GpuError::Unsupported(format!(
                    "a {} step would read and write one buffer",
                    d.kernel.name()
                )));
            }
        }
        Ok(Self { buffer_of, sizes })
    }
}
