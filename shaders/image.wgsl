// The image kernels on f32 images: one invocation per output value.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn pixel(i: u32) -> f32 {
    return x[i];
}

fn stored(v: f32) -> f32 {
    return v;
}

fn emit(i: u32, n: u32, kind: u32) {
    if (i < n) {
        out[i] = value_at(kind, i);
    }
}

// #include image.wgsl
