// Depthwise 2-D convolution (one input and one output channel per group, YOLO11's DWConv): one
// thread per output element. The GEMM kernels would give each group a 64-channel tile (or 4
// channels per thread) of which one channel is real.

@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> w: array<elem>;
@group(0) @binding(3) var<storage, read> bias: array<elem>;
@group(0) @binding(4) var<storage, read_write> y: array<elem>;

// p: as conv.wgsl (channels per group 1), then 18 channels.

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let i = flat_index(group, groups, thread);
    let ih = p[1]; let iw = p[2]; let oh = p[4]; let ow = p[5];
    let kh = p[6]; let kw = p[7];
    if (i >= p[18] * oh * ow) { return; }
    let c = i / (oh * ow);
    let oy = (i / ow) % oh;
    let ox = i % ow;
    let plane = p[15] + c * ih * iw;
    var sum = 0.0;
    for (var ky = 0u; ky < kh; ky++) {
        let iy = i32(oy * p[8] + ky * p[10]) - i32(p[12]);
        if (iy < 0 || iy >= i32(ih)) { continue; }
        for (var kx = 0u; kx < kw; kx++) {
            let ix = i32(ox * p[9] + kx * p[11]) - i32(p[13]);
            if (ix < 0 || ix >= i32(iw)) { continue; }
            sum += f32(x[plane + u32(iy) * iw + u32(ix)]) * f32(w[(c * kh + ky) * kw + kx]);
        }
    }
    y[p[16] + c * p[17] + i % (oh * ow)] = elem(activate(sum + f32(bias[c]), p[14]));
}
