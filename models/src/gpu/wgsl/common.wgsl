// Shared by every kernel: parameters arrive as one storage array of u32 (`p`, binding 0; each
// kernel lists what its words mean), and each kernel runs one thread per output element unless
// it says otherwise. Tensors are stored as `elem` — f32, or f16 on devices with shader-f16
// (`Kernel::source` declares it in front) — and every kernel computes in f32: it converts what
// it loads and what it stores, so f16 halves the memory traffic without f16 sums.

@group(0) @binding(0) var<storage, read> p: array<u32>;

const ACT_NONE: u32 = 0u;
const ACT_SIGMOID: u32 = 1u;
const ACT_SILU: u32 = 2u;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case ACT_SIGMOID: { return sigmoid(x); }
        case ACT_SILU: { return x * sigmoid(x); }
        default: { return x; }
    }
}

// Flat index of this thread when a 1-D job is dispatched as a 2-D grid of 256-thread groups
// (one dimension holds at most 65535 groups).
fn flat_index(group: vec3<u32>, groups: vec3<u32>, local: u32) -> u32 {
    return (group.y * groups.x + group.x) * 256u + local;
}

// Where output element `i` reads each of two operands: both walk the output's 6 axes (lengths
// at p[shape..shape+6]) with their own strides (p[a..a+6], p[b..b+6]; 0 where one broadcasts).
fn two_operands(i: u32, shape: u32, a: u32, b: u32) -> vec2<u32> {
    var rest = i;
    var at = vec2<u32>(0u);
    for (var n = 0u; n < 6u; n++) {
        let axis = 5u - n;
        let len = p[shape + axis];
        let coord = rest % len;
        rest = rest / len;
        at += coord * vec2<u32>(p[a + axis], p[b + axis]);
    }
    return at;
}
