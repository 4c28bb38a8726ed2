// out = a ∘ b element-wise with NumPy broadcasting: each operand walks the output's (up to 6)
// axes with its own strides, 0 where it broadcasts.

@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read_write> out: array<elem>;

// p: 0 count, 1 op (add, sub, mul, div), 2 out offset, 3 a offset, 4 b offset,
// 5..11 shape, 11..17 a strides, 17..23 b strides, 23 whether a is read through `out`'s binding
// (it lies in the buffer this step writes, e.g. a C2f sum written into the concat holding its
// operand; one buffer may not be bound twice where one binding writes), 24 the same for b.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let i = flat_index(group, groups, thread);
    if (i >= p[0]) { return; }
    let at = vec2<u32>(p[3], p[4]) + two_operands(i, 5u, 11u, 17u);
    var va: f32;
    if (p[23] == 1u) { va = f32(out[at.x]); } else { va = f32(a[at.x]); }
    var vb: f32;
    if (p[24] == 1u) { vb = f32(out[at.y]); } else { vb = f32(b[at.y]); }
    var r: f32;
    switch p[1] {
        case 0u: { r = va + vb; }
        case 1u: { r = va - vb; }
        case 2u: { r = va * vb; }
        default: { r = va / vb; }
    }
    out[p[2] + i] = elem(r);
}
