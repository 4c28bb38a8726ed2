// Softmax along one axis of a tensor of up to 6 axes, one thread per lane (every coordinate
// but the axis's): it reads the input through strides of its own (a transpose in front of it
// folded in: the DFL head's) and writes the output contiguously. The detectors' softmax is the
// DFL head's, 16 bins long.

@group(0) @binding(1) var<storage, read> input: array<elem>;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;

// p: 0 lanes, 1 axis (of the 6), 2 in offset, 3 out offset, 4..10 shape, 10..16 in strides.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let lane = flat_index(group, groups, thread);
    if (lane >= p[0]) { return; }
    let axis = p[1];
    // Where the lane starts in the input and the output, and the output's stride along the axis.
    var rest = lane;
    var src = p[2];
    var dst = p[3];
    var out_stride = 1u;
    var along = 0u;
    for (var n = 0u; n < 6u; n++) {
        let a = 5u - n;
        let len = p[4u + a];
        if (a == axis) {
            along = out_stride;
        } else {
            let coord = rest % len;
            rest = rest / len;
            src += coord * p[10u + a];
            dst += coord * out_stride;
        }
        out_stride *= len;
    }
    let len = p[4u + axis];
    let step = p[10u + axis];
    var top = -3.402823e38;
    for (var j = 0u; j < len; j++) {
        top = max(top, f32(input[src + j * step]));
    }
    var sum = 0.0;
    for (var j = 0u; j < len; j++) {
        sum += exp(f32(input[src + j * step]) - top);
    }
    for (var j = 0u; j < len; j++) {
        out[dst + j * along] = elem(exp(f32(input[src + j * step]) - top) / sum);
    }
}
