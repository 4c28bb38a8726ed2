// out = Σ_k a · b over one summed axis (an EinSum of two operands: MatMul, batched MatMul, the
// attention products of YOLO11's PSA block). One thread per output element; each operand walks
// the output's (up to 6) axes with its own strides, 0 where the axis is not its own, and the
// summed axis with one more stride. Small products only: no tiling.

@group(0) @binding(1) var<storage, read> a: array<elem>;
@group(0) @binding(2) var<storage, read> b: array<elem>;
@group(0) @binding(3) var<storage, read_write> out: array<elem>;

// p: 0 count, 1 out offset, 2 a offset, 3 b offset, 4 summed length, 5 its stride in a,
// 6 its stride in b, 7..13 shape, 13..19 a strides, 19..25 b strides.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let i = flat_index(group, groups, thread);
    if (i >= p[0]) { return; }
    let at = vec2<u32>(p[2], p[3]) + two_operands(i, 7u, 13u, 19u);
    var sum = 0.0;
    for (var k = 0u; k < p[4]; k++) {
        sum += f32(a[at.x + k * p[5]]) * f32(b[at.y + k * p[6]]);
    }
    out[p[1] + i] = elem(sum);
}
