// One expression per element-wise op of the table in src/kernel/ops.rs,
// as `fn unary_NAME(v: f32) -> f32` and `fn binary_NAME(a: f32, b: f32) -> f32`.
// build.rs generates `apply_unary` and `apply_binary`, which dispatch on the
// op codes, and prepends both to every shader; an op without its function
// here fails the build.

fn unary_relu(v: f32) -> f32 {
    return max(v, 0.0);
}

// Tanh approximation, as in GPT-2 and the other backends.
fn unary_gelu(v: f32) -> f32 {
    let c = 0.7978845608028654;
    return 0.5 * v * (1.0 + tanh(c * (v + 0.044715 * v * v * v)));
}

fn unary_exp(v: f32) -> f32 {
    return exp(v);
}

fn unary_tanh(v: f32) -> f32 {
    return tanh(v);
}

fn unary_sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

fn binary_add(a: f32, b: f32) -> f32 {
    return a + b;
}

fn binary_mul(a: f32, b: f32) -> f32 {
    return a * b;
}
