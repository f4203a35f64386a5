// The image kernels on u8 images, packed four to a u32 (the tensor's bytes
// as they are in memory), computed in f32 and written rounded to nearest
// and saturated, as the CPU path writes u8. One invocation per output
// word: four output values; the bytes of the last word past the end are
// zero.

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

// Byte `i` of the input.
fn pixel(i: u32) -> f32 {
    return f32((x[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu);
}

fn level(v: f32) -> u32 {
    return u32(clamp(floor(v + 0.5), 0.0, 255.0));
}

fn stored(v: f32) -> f32 {
    return f32(level(v));
}

fn emit(w: u32, n: u32, kind: u32) {
    if (w * 4u >= n) {
        return;
    }
    var packed = 0u;
    for (var k = 0u; k < 4u; k++) {
        let i = w * 4u + k;
        if (i < n) {
            packed |= level(value_at(kind, i)) << (k * 8u);
        }
    }
    out[w] = packed;
}

// #include image.wgsl
