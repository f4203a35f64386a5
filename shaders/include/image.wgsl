// The image kernels of image.wgsl (f32) and image_u8.wgsl (u8 packed four
// to a u32) on [H, W, C] images (C = 1 for [H, W]), border replicated:
// bilinear resize, Gaussian blur, Sobel magnitude, RGB to gray, binary
// threshold, and the fused Sobel+threshold (gray+blur runs as two passes:
// gray into a transient buffer, then the blur). The file that includes
// this one declares the bindings of `x` and `out`, `pixel(i)` (input value
// `i` as f32), `stored(v)` (a value as the tensors' dtype holds it: a
// fused kernel's intermediate) and `emit(index, n, kind)` (writes output
// values from `value_at(kind, i)`).

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

@group(0) @binding(2) var<uniform> p: Params;

const RESIZE: u32 = 0u;
const BLUR: u32 = 1u;
const SOBEL: u32 = 2u;
const GRAY: u32 = 3u;
const THRESHOLD: u32 = 4u;
const SOBEL_THRESHOLD: u32 = 5u;

fn index(wg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * p.groups_x + wg.x) * 256u + li;
}

fn px(y: i32, x_: i32, c: u32) -> f32 {
    let yy = u32(clamp(y, 0, i32(p.height) - 1));
    let xx = u32(clamp(x_, 0, i32(p.width) - 1));
    return pixel((yy * p.width + xx) * p.channels + c);
}

fn gray_of(j: u32) -> f32 {
    return 0.299 * pixel(j * 3u) + 0.587 * pixel(j * 3u + 1u) + 0.114 * pixel(j * 3u + 2u);
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

fn above(v: f32) -> f32 {
    return select(0.0, p.high, v > p.level);
}

fn value_at(kind: u32, i: u32) -> f32 {
    switch kind {
        case RESIZE: { return resize_at(i); }
        case BLUR: { return blur_at(i); }
        case SOBEL: { return sobel_at(i); }
        case GRAY: { return gray_of(i); }
        case THRESHOLD: { return above(pixel(i)); }
        default: { return above(stored(sobel_at(i))); }
    }
}

@compute @workgroup_size(256)
fn resize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    emit(index(wg, li), p.out_height * p.out_width * p.channels, RESIZE);
}

@compute @workgroup_size(256)
fn blur(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    emit(index(wg, li), p.height * p.width * p.channels, BLUR);
}

@compute @workgroup_size(256)
fn sobel(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    emit(index(wg, li), p.height * p.width * p.channels, SOBEL);
}

@compute @workgroup_size(256)
fn rgb_to_gray(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    emit(index(wg, li), p.height * p.width, GRAY);
}

@compute @workgroup_size(256)
fn threshold(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    emit(index(wg, li), p.height * p.width * p.channels, THRESHOLD);
}

@compute @workgroup_size(256)
fn sobel_threshold(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    emit(index(wg, li), p.height * p.width * p.channels, SOBEL_THRESHOLD);
}
