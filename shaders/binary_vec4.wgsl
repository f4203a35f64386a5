// Binary element-wise kernels on f32 (add, mul), four elements per
// invocation, for tensors whose length is a multiple of four.

struct Params {
    n: u32,       // length in vec4
    op: u32,      // 0 add, 1 mul
    groups_x: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * p.groups_x + wg.x) * 256u + li;
    if (i >= p.n) {
        return;
    }
    if (p.op == 0u) {
        out[i] = a[i] + b[i];
    } else {
        out[i] = a[i] * b[i];
    }
}
