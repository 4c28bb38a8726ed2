// Max pooling over one CHW image; padding never wins (it counts as -∞).

@group(0) @binding(1) var<storage, read> input: array<elem>;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;

// p: 0 channels, 1 IH, 2 IW, 3 OH, 4 OW, 5 KH, 6 KW, 7 SH, 8 SW, 9 PH, 10 PW, 11 in offset,
// 12 out offset, 13 whether the input is read through `out`'s binding (an SPPF pool reading one
// member of the concat it writes another of; one buffer may not be bound twice where one
// binding writes).

fn load(at: u32) -> f32 {
    if (p[13] == 1u) { return f32(out[at]); }
    return f32(input[at]);
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let i = flat_index(group, groups, thread);
    let ih = p[1]; let iw = p[2]; let oh = p[3]; let ow = p[4];
    if (i >= p[0] * oh * ow) { return; }
    let c = i / (oh * ow);
    let oy = (i / ow) % oh;
    let ox = i % ow;
    var best = -3.402823e38;
    for (var ky = 0u; ky < p[5]; ky++) {
        let iy = i32(oy * p[7] + ky) - i32(p[9]);
        if (iy < 0 || iy >= i32(ih)) { continue; }
        for (var kx = 0u; kx < p[6]; kx++) {
            let ix = i32(ox * p[8] + kx) - i32(p[10]);
            if (ix < 0 || ix >= i32(iw)) { continue; }
            best = max(best, load(p[11] + (c * ih + u32(iy)) * iw + u32(ix)));
        }
    }
    out[p[12] + i] = elem(best);
}
