// Softmax over the middle axis of [outer, len, inner], one thread per (outer, inner) lane:
// the detectors' softmax is the DFL head's, 16 bins long.

@group(0) @binding(1) var<storage, read> input: array<elem>;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;

// p: 0 outer, 1 len, 2 inner, 3 in offset, 4 out offset.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let lane = flat_index(group, groups, thread);
    let len = p[1]; let inner = p[2];
    if (lane >= p[0] * inner) { return; }
    let start = (lane / inner) * len * inner + lane % inner;
    var top = -3.402823e38;
    for (var j = 0u; j < len; j++) {
        top = max(top, f32(input[p[3] + start + j * inner]));
    }
    var sum = 0.0;
    for (var j = 0u; j < len; j++) {
        sum += exp(f32(input[p[3] + start + j * inner]) - top);
    }
    for (var j = 0u; j < len; j++) {
        out[p[4] + start + j * inner] = elem(exp(f32(input[p[3] + start + j * inner]) - top) / sum);
    }
}
