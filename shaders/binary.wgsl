// Binary element-wise kernels on f32 (add, mul). One invocation per element; the grid may be
// two-dimensional when there are more than 65535 workgroups.

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    n: u32,
    op: u32,      // 0 add, 1 mul
    groups_x: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<T>;
@group(0) @binding(1) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<uniform> p: Params;


@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * p.groups_x + wg.x) * 256u + li;
    if (i >= p.n) {
        return;
    }
    if (p.op == 0u) {
        out[i] = T(f32(a[i]) + f32(b[i]));
    } else {
        out[i] = T(f32(a[i]) * f32(b[i]));
    }
}
