// Image kernels on f32 images of [H, W, C] (C = 1 for [H, W]), border
// replicated: bilinear resize, Gaussian blur, Sobel magnitude, RGB to gray,
// binary threshold.
// One invocation per output value.

struct Params {
    height: u32,
    width: u32,
    channels: u32,
    out_height: u32,
    out_width: u32,
    radius: u32,
    groups_x: u32,
    pad: u32,
    sigma: f32,
    // 1 / (sum of the 1-D Gaussian weights)^2
    norm: f32,
    // threshold: values above `level` become `high`, the rest 0
    level: f32,
    high: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn index(wg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * p.groups_x + wg.x) * 256u + li;
}

fn px(y: i32, x_: i32, c: u32) -> f32 {
    let yy = u32(clamp(y, 0, i32(p.height) - 1));
    let xx = u32(clamp(x_, 0, i32(p.width) - 1));
    return x[(yy * p.width + xx) * p.channels + c];
}

@compute @workgroup_size(256)
fn resize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = index(wg, li);
    if (i >= p.out_height * p.out_width * p.channels) {
        return;
    }
    let c = i % p.channels;
    let ox = (i / p.channels) % p.out_width;
    let oy = i / (p.channels * p.out_width);
    let sy = clamp((f32(oy) + 0.5) * f32(p.height) / f32(p.out_height) - 0.5, 0.0, f32(p.height - 1u));
    let sx = clamp((f32(ox) + 0.5) * f32(p.width) / f32(p.out_width) - 0.5, 0.0, f32(p.width - 1u));
    let y0 = i32(floor(sy));
    let x0 = i32(floor(sx));
    let fy = sy - floor(sy);
    let fx = sx - floor(sx);
    let top = px(y0, x0, c) * (1.0 - fx) + px(y0, x0 + 1, c) * fx;
    let bottom = px(y0 + 1, x0, c) * (1.0 - fx) + px(y0 + 1, x0 + 1, c) * fx;
    out[i] = top * (1.0 - fy) + bottom * fy;
}

@compute @workgroup_size(256)
fn blur(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = index(wg, li);
    if (i >= p.height * p.width * p.channels) {
        return;
    }
    let c = i % p.channels;
    let xx = i32((i / p.channels) % p.width);
    let yy = i32(i / (p.channels * p.width));
    let r = i32(p.radius);
    let two_s2 = 2.0 * p.sigma * p.sigma;
    var acc = 0.0;
    for (var dy = -r; dy <= r; dy++) {
        let wy = exp(-f32(dy * dy) / two_s2);
        for (var dx = -r; dx <= r; dx++) {
            acc += wy * exp(-f32(dx * dx) / two_s2) * px(yy + dy, xx + dx, c);
        }
    }
    out[i] = acc * p.norm;
}

@compute @workgroup_size(256)
fn sobel(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = index(wg, li);
    if (i >= p.height * p.width * p.channels) {
        return;
    }
    let c = i % p.channels;
    let xx = i32((i / p.channels) % p.width);
    let yy = i32(i / (p.channels * p.width));
    let gx = px(yy - 1, xx + 1, c) + 2.0 * px(yy, xx + 1, c) + px(yy + 1, xx + 1, c)
        - px(yy - 1, xx - 1, c) - 2.0 * px(yy, xx - 1, c) - px(yy + 1, xx - 1, c);
    let gy = px(yy + 1, xx - 1, c) + 2.0 * px(yy + 1, xx, c) + px(yy + 1, xx + 1, c)
        - px(yy - 1, xx - 1, c) - 2.0 * px(yy - 1, xx, c) - px(yy - 1, xx + 1, c);
    out[i] = sqrt(gx * gx + gy * gy);
}

@compute @workgroup_size(256)
fn rgb_to_gray(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = index(wg, li);
    if (i >= p.height * p.width) {
        return;
    }
    out[i] = 0.299 * x[i * 3u] + 0.587 * x[i * 3u + 1u] + 0.114 * x[i * 3u + 2u];
}

@compute @workgroup_size(256)
fn threshold(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = index(wg, li);
    if (i >= p.height * p.width * p.channels) {
        return;
    }
    out[i] = select(0.0, p.high, x[i] > p.level);
}
