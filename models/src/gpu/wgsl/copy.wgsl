// A strided copy over up to 6 axes: element (c0..c5) is read at
// in offset + Σ (c / divisor) · in stride and written at out offset + Σ c · out stride. Slices,
// transposes, nearest upsampling (divisor = factor) and concat members are all this.

@group(0) @binding(1) var<storage, read> input: array<elem>;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;

// p: 0 count, 1 in offset, 2 out offset, 3..9 shape, 9..15 in strides, 15..21 divisors,
// 21..27 out strides.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let i = flat_index(group, groups, thread);
    if (i >= p[0]) { return; }
    var rest = i;
    var src = p[1];
    var dst = p[2];
    for (var axis = 5; axis >= 0; axis--) {
        let a = u32(axis);
        let len = p[3u + a];
        let coord = rest % len;
        rest = rest / len;
        src += (coord / p[15u + a]) * p[9u + a];
        dst += coord * p[21u + a];
    }
    out[dst] = input[src];
}
