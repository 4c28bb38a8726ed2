// out = activation(in), element by element.

@group(0) @binding(1) var<storage, read> input: array<elem>;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;

// p: 0 count, 1 activation, 2 in offset, 3 out offset.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let i = flat_index(group, groups, thread);
    if (i >= p[0]) { return; }
    out[p[3] + i] = elem(activate(f32(input[p[2] + i]), p[1]));
}
