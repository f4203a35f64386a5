// Unary element-wise kernels on f32, four elements per invocation, for
// tensors whose length is a multiple of four: relu, gelu (tanh
// approximation), exp.

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    n: u32,       // length in vec4
    op: u32,      // 0 relu, 1 gelu, 2 exp
    groups_x: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<T>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<T>>;
@group(0) @binding(2) var<uniform> p: Params;

fn gelu(v: vec4<f32>) -> vec4<f32> {
    let c = 0.7978845608028654;
    return 0.5 * v * (1.0 + tanh(c * (v + 0.044715 * v * v * v)));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * p.groups_x + wg.x) * 256u + li;
    if (i >= p.n) {
        return;
    }
    let v = vec4<f32>(x[i]);
    if (p.op == 0u) {
        out[i] = vec4<T>(max(v, vec4<f32>(0.0)));
    } else if (p.op == 1u) {
        out[i] = vec4<T>(gelu(v));
    } else {
        out[i] = vec4<T>(exp(v));
    }
}
