// Max or average pooling over NCHW with a square window, no padding: one
// invocation per output element.

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    planes: u32,   // batch * channels
    height: u32,
    width: u32,
    oh: u32,
    ow: u32,
    window: u32,
    stride: u32,
    op: u32,       // POOL_MAX or POOL_AVG
    groups_x: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * p.groups_x + wg.x) * 256u + li;
    if (i >= p.planes * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    var acc = 0.0;
    if (p.op == POOL_MAX) {
        acc = -3.4028235e38;
    }
    for (var ky = 0u; ky < p.window; ky++) {
        for (var kx = 0u; kx < p.window; kx++) {
            let v = f32(x[(plane * p.height + oy * p.stride + ky) * p.width + ox * p.stride + kx]);
            if (p.op == POOL_MAX) {
                acc = max(acc, v);
            } else {
                acc += v;
            }
        }
    }
    if (p.op == POOL_AVG) {
        acc = acc / f32(p.window * p.window);
    }
    out[i] = T(acc);
}
