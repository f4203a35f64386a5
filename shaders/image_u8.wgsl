// The image kernels of image.wgsl on u8 images, packed four to a u32 (the
// tensor's bytes as they are in memory): [H, W, C] (C = 1 for [H, W]),
// border replicated, computed in f32 and written rounded to nearest and
// saturated, as the CPU path writes u8. One invocation per output word:
// four output values; the bytes of the last word past the end are zero.

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

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

fn word(wg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * p.groups_x + wg.x) * 256u + li;
}

// Byte `i` of the input.
fn byte(i: u32) -> f32 {
    return f32((x[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu);
}

fn px(y: i32, x_: i32, c: u32) -> f32 {
    let yy = u32(clamp(y, 0, i32(p.height) - 1));
    let xx = u32(clamp(x_, 0, i32(p.width) - 1));
    return byte((yy * p.width + xx) * p.channels + c);
}

fn level(v: f32) -> u32 {
    return u32(clamp(floor(v + 0.5), 0.0, 255.0));
}

fn resize_at(i: u32) -> f32 {
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
    return top * (1.0 - fy) + bottom * fy;
}

fn blur_at(i: u32) -> f32 {
    let c = i % p.channels;
    let xx = i32((i / p.channels) % p.width);
    let yy = i32(i / (p.channels * p.width));
    let r = i32(p.radius);
    let two_s2 = 2.0 * p.sigma * p.sigma;
    var acc = 0.0;
    for (var dy = -r; dy <= r; dy++) {
        var row = 0.0;
        for (var dx = -r; dx <= r; dx++) {
            row += exp(-f32(dx * dx) / two_s2) * px(yy + dy, xx + dx, c);
        }
        acc += exp(-f32(dy * dy) / two_s2) * row;
    }
    return acc * p.norm;
}

fn sobel_at(i: u32) -> f32 {
    let c = i % p.channels;
    let xx = i32((i / p.channels) % p.width);
    let yy = i32(i / (p.channels * p.width));
    let gx = px(yy - 1, xx + 1, c) + 2.0 * px(yy, xx + 1, c) + px(yy + 1, xx + 1, c)
        - px(yy - 1, xx - 1, c) - 2.0 * px(yy, xx - 1, c) - px(yy + 1, xx - 1, c);
    let gy = px(yy + 1, xx - 1, c) + 2.0 * px(yy + 1, xx, c) + px(yy + 1, xx + 1, c)
        - px(yy - 1, xx - 1, c) - 2.0 * px(yy - 1, xx, c) - px(yy - 1, xx + 1, c);
    return sqrt(gx * gx + gy * gy);
}

fn gray_at(i: u32) -> f32 {
    return 0.299 * byte(i * 3u) + 0.587 * byte(i * 3u + 1u) + 0.114 * byte(i * 3u + 2u);
}

fn threshold_at(i: u32) -> f32 {
    return select(0.0, p.high, byte(i) > p.level);
}

// The output word `w` of `n` output values from `kind`'s value at each
// index: 0 resize, 1 blur, 2 Sobel, 3 RGB to gray, 4 threshold.
fn store(w: u32, n: u32, kind: u32) {
    if (w * 4u >= n) {
        return;
    }
    var packed = 0u;
    for (var k = 0u; k < 4u; k++) {
        let i = w * 4u + k;
        if (i < n) {
            var v = 0.0;
            switch kind {
                case 0u: { v = resize_at(i); }
                case 1u: { v = blur_at(i); }
                case 2u: { v = sobel_at(i); }
                case 3u: { v = gray_at(i); }
                default: { v = threshold_at(i); }
            }
            packed |= level(v) << (k * 8u);
        }
    }
    out[w] = packed;
}

@compute @workgroup_size(256)
fn resize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    store(word(wg, li), p.out_height * p.out_width * p.channels, 0u);
}

@compute @workgroup_size(256)
fn blur(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    store(word(wg, li), p.height * p.width * p.channels, 1u);
}

@compute @workgroup_size(256)
fn sobel(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    store(word(wg, li), p.height * p.width * p.channels, 2u);
}

@compute @workgroup_size(256)
fn rgb_to_gray(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    store(word(wg, li), p.height * p.width, 3u);
}

@compute @workgroup_size(256)
fn threshold(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    store(word(wg, li), p.height * p.width * p.channels, 4u);
}
