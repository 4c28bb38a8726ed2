// 2-D convolution over one CHW image without workgroup memory: each thread computes 4 output
// channels × 4 output pixels straight from storage. Software adapters (SwiftShader, lavapipe)
// have no fast on-chip memory to stage tiles in, and run this one faster than the tiled kernel
// (conv.wgsl): 2.6 s against 3.0 s for shapes-yolov8n-320's 64 convolutions on SwiftShader.
// Accumulators are vectors, not indexed arrays: SwiftShader kept indexed arrays in memory and
// ran 4× slower.

@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> w: array<elem>;
@group(0) @binding(3) var<storage, read> bias: array<elem>;
@group(0) @binding(4) var<storage, read_write> y: array<elem>;

// p: as conv.wgsl.

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let cin = p[0]; let ih = p[1]; let iw = p[2]; let cout = p[3];
    let oh = p[4]; let ow = p[5]; let kh = p[6]; let kw = p[7];
    let sh = p[8]; let sw = p[9]; let dh = p[10]; let dw = p[11];
    let ph = i32(p[12]); let pw = i32(p[13]);
    let pixels = oh * ow;
    let n0 = id.x * 4u;
    let m0 = id.y * 4u;
    let g = id.z;
    if (n0 >= pixels || m0 >= cout) { return; }
    let depth = cin * kh * kw;
    let x_base = p[15] + g * cin * ih * iw;

    // Four pixels' top-left input corners, and the rows of the four output channels'
    // weights (clamped: channels past the end compute garbage that is never stored).
    let n = min(vec4<u32>(n0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(pixels - 1u));
    let iy0 = vec4<i32>((n / ow) * sh) - ph;
    let ix0 = vec4<i32>((n % ow) * sw) - pw;
    let rows = (g * cout + min(vec4<u32>(m0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(cout - 1u))) * depth;

    // acc_i holds output channel m0 + i at the four pixels.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var k = 0u;
    for (var c = 0u; c < cin; c++) {
        let plane = x_base + c * ih * iw;
        for (var ky = 0u; ky < kh; ky++) {
            let iy = iy0 + vec4<i32>(i32(ky * dh));
            let row_ok = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(ih)));
            for (var kx = 0u; kx < kw; kx++) {
                let ix = ix0 + vec4<i32>(i32(kx * dw));
                let ok = row_ok & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(iw)));
                let at = vec4<u32>(select(vec4<i32>(0), iy * i32(iw) + ix, ok)) + plane;
                let xs = select(vec4<f32>(0.0), vec4<f32>(f32(x[at.x]), f32(x[at.y]), f32(x[at.z]), f32(x[at.w])), ok);
                acc0 = fma(vec4<f32>(f32(w[rows.x + k])), xs, acc0);
                acc1 = fma(vec4<f32>(f32(w[rows.y + k])), xs, acc1);
                acc2 = fma(vec4<f32>(f32(w[rows.z + k])), xs, acc2);
                acc3 = fma(vec4<f32>(f32(w[rows.w + k])), xs, acc3);
                k++;
            }
        }
    }

    let act = p[14];
    store(m0, n0, acc0, cout, pixels, g, act);
    store(m0 + 1u, n0, acc1, cout, pixels, g, act);
    store(m0 + 2u, n0, acc2, cout, pixels, g, act);
    store(m0 + 3u, n0, acc3, cout, pixels, g, act);
}

fn store(m: u32, n0: u32, acc: vec4<f32>, cout: u32, pixels: u32, g: u32, act: u32) {
    if (m >= cout) { return; }
    let channel = g * cout + m;
    let b = f32(bias[channel]);
    let at = p[16] + channel * p[17] + n0;
    y[at] = elem(activate(acc.x + b, act));
    if (n0 + 1u < pixels) { y[at + 1u] = elem(activate(acc.y + b, act)); }
    if (n0 + 2u < pixels) { y[at + 2u] = elem(activate(acc.z + b, act)); }
    if (n0 + 3u < pixels) { y[at + 3u] = elem(activate(acc.w + b, act)); }
}
