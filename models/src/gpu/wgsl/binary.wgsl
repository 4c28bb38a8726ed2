// out = a ∘ b element-wise with NumPy broadcasting: each operand walks the output's (up to 6)
// axes with its own strides, 0 where it broadcasts.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// p: 0 count, 1 op (add, sub, mul, div), 2 out offset, 3 a offset, 4 b offset,
// 5..11 shape, 11..17 a strides, 17..23 b strides.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let i = flat_index(group, groups, thread);
    if (i >= p[0]) { return; }
    var rest = i;
    var ia = p[3];
    var ib = p[4];
    for (var axis = 5; axis >= 0; axis--) {
        let len = p[5u + u32(axis)];
        let coord = rest % len;
        rest = rest / len;
        ia += coord * p[11u + u32(axis)];
        ib += coord * p[17u + u32(axis)];
    }
    let va = a[ia];
    let vb = b[ib];
    var r: f32;
    switch p[1] {
        case 0u: { r = va + vb; }
        case 1u: { r = va - vb; }
        case 2u: { r = va * vb; }
        default: { r = va / vb; }
    }
    out[p[2] + i] = r;
}
