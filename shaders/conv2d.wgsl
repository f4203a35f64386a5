// Direct 2-D convolution, NCHW input, OIHW weights, zero padding: one
// invocation per output element.

// The element type in memory: f32, or f16 in the variant built where the
// adapter has SHADER_F16 (arithmetic stays f32).
alias T = f32;

struct Params {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    outputs: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    stride: u32,
    padding: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> w: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * p.groups_x + wg.x) * 256u + li;
    if (i >= p.batch * p.outputs * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let o = (i / (p.ow * p.oh)) % p.outputs;
    let bi = i / (p.ow * p.oh * p.outputs);
    var acc = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * p.stride + ky) - i32(p.padding);
            if (iy < 0 || iy >= i32(p.height)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox * p.stride + kx) - i32(p.padding);
                if (ix < 0 || ix >= i32(p.width)) {
                    continue;
                }
                let xv = f32(x[((bi * p.channels + c) * p.height + u32(iy)) * p.width + u32(ix)]);
                acc = fma(xv, f32(w[((o * p.channels + c) * p.kh + ky) * p.kw + kx]), acc);
            }
        }
    }
    out[i] = T(acc);
}
