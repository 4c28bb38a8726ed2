// 2-D convolution as an implicit GEMM over one CHW image: C[m, n] = Σ_k W[m, k] · X[k, n] with
// m an output channel of the group, n an output pixel and k = (input channel, ky, kx). The
// im2col element X[k, n] is addressed in the kernel, never materialised. A workgroup of
// THREADS × THREADS computes a TILE × TILE tile of C, 4×4 per thread, staging 16-deep slices of
// W and X in workgroup memory. Bias and the activation are applied before the single store.
// `Kernel::source` declares TILE in front: 64, or 32 for convolutions too small to give a GPU
// enough 64-wide tiles to keep its compute units busy.

@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> w: array<elem>;
@group(0) @binding(3) var<storage, read> bias: array<elem>;
@group(0) @binding(4) var<storage, read_write> y: array<elem>;

// p: 0 in channels per group, 1 IH, 2 IW, 3 out channels per group, 4 OH, 5 OW, 6 KH, 7 KW,
// 8 SH, 9 SW, 10 DH, 11 DW, 12 PH, 13 PW, 14 activation, 15 x offset, 16 y offset, 17 elements
// from one output channel to the next (OH·OW, or more for rows placed in a concat).

const THREADS: u32 = TILE / 4u;
const DEPTH: u32 = 16u;
// Elements of each staged tile one thread loads.
const LOADS: u32 = TILE * DEPTH / (THREADS * THREADS);

var<workgroup> tile_w: array<f32, TILE * DEPTH>; // [DEPTH][TILE]: k-major
var<workgroup> tile_x: array<f32, TILE * DEPTH>; // [DEPTH][TILE]

@compute @workgroup_size(THREADS, THREADS, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let cin = p[0]; let ih = p[1]; let iw = p[2]; let cout = p[3];
    let oh = p[4]; let ow = p[5]; let kh = p[6]; let kw = p[7];
    let sh = p[8]; let sw = p[9]; let dh = p[10]; let dw = p[11];
    let ph = p[12]; let pw = p[13];
    let taps = kh * kw;
    let depth = cin * taps;
    let pixels = oh * ow;
    let g = group.z;
    let n0 = group.x * TILE;
    let m0 = group.y * TILE;
    let x_base = p[15] + g * cin * ih * iw;
    let w_base = g * cout * depth;

    // acc_i: output channel m0 + local.y + THREADS·i at pixels n0 + local.x + THREADS·j
    // (j = 0..3), in vectors rather than an indexed array so every compiler keeps them in
    // registers.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < depth; k0 += DEPTH) {
        for (var i = 0u; i < LOADS; i++) {
            let e = thread + THREADS * THREADS * i;
            // Weights: TILE rows × DEPTH columns, read along k.
            let wm = e / DEPTH;
            let wk = e % DEPTH;
            var wv = 0.0;
            if (m0 + wm < cout && k0 + wk < depth) {
                wv = f32(w[w_base + (m0 + wm) * depth + k0 + wk]);
            }
            tile_w[wk * TILE + wm] = wv;
            // Input: DEPTH rows × TILE pixels, read along the pixels.
            let xk = e / TILE;
            let xn = e % TILE;
            var xv = 0.0;
            let k = k0 + xk;
            let n = n0 + xn;
            if (k < depth && n < pixels) {
                let c = k / taps;
                let tap = k % taps;
                let iy = i32((n / ow) * sh + (tap / kw) * dh) - i32(ph);
                let ix = i32((n % ow) * sw + (tap % kw) * dw) - i32(pw);
                if (iy >= 0 && iy < i32(ih) && ix >= 0 && ix < i32(iw)) {
                    xv = f32(x[x_base + (c * ih + u32(iy)) * iw + u32(ix)]);
                }
            }
            tile_x[xk * TILE + xn] = xv;
        }
        workgroupBarrier();
        for (var k = 0u; k < DEPTH; k++) {
            let wr = k * TILE + local.y;
            let xr = k * TILE + local.x;
            let b = vec4<f32>(tile_x[xr], tile_x[xr + THREADS], tile_x[xr + 2u * THREADS], tile_x[xr + 3u * THREADS]);
            acc0 = fma(vec4<f32>(tile_w[wr]), b, acc0);
            acc1 = fma(vec4<f32>(tile_w[wr + THREADS]), b, acc1);
            acc2 = fma(vec4<f32>(tile_w[wr + 2u * THREADS]), b, acc2);
            acc3 = fma(vec4<f32>(tile_w[wr + 3u * THREADS]), b, acc3);
        }
        workgroupBarrier();
    }

    let act = p[14];
    let n = n0 + local.x;
    store(m0 + local.y, n, acc0, cout, pixels, g, act);
    store(m0 + local.y + THREADS, n, acc1, cout, pixels, g, act);
    store(m0 + local.y + 2u * THREADS, n, acc2, cout, pixels, g, act);
    store(m0 + local.y + 3u * THREADS, n, acc3, cout, pixels, g, act);
}

// Row m of the output at pixels n, n + THREADS, n + 2·THREADS, n + 3·THREADS.
fn store(m: u32, n: u32, acc: vec4<f32>, cout: u32, pixels: u32, g: u32, act: u32) {
    if (m >= cout) { return; }
    let channel = g * cout + m;
    let b = f32(bias[channel]);
    let at = p[16] + channel * p[17];
    if (n < pixels) { y[at + n] = elem(activate(acc.x + b, act)); }
    if (n + THREADS < pixels) { y[at + n + THREADS] = elem(activate(acc.y + b, act)); }
    if (n + 2u * THREADS < pixels) { y[at + n + 2u * THREADS] = elem(activate(acc.z + b, act)); }
    if (n + 3u * THREADS < pixels) { y[at + n + 3u * THREADS] = elem(activate(acc.w + b, act)); }
}
