// One expression per element-wise op of the table in src/kernel/ops.rs, as
// `float unary_NAME(float v)` and `float binary_NAME(float a, float b)`.
// build.rs generates `apply_unary` and `apply_binary`, which dispatch on
// the op codes, and the op-code constants; an op without its function here
// fails the build.

inline float unary_relu(float v) {
    return fmax(v, 0.0f);
}

// Tanh approximation, as in GPT-2 and the other backends.
inline float unary_gelu(float v) {
    return 0.5f * v * (1.0f + tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
}

inline float unary_exp(float v) {
    return exp(v);
}

inline float unary_tanh(float v) {
    return tanh(v);
}

inline float unary_sigmoid(float v) {
    return 1.0f / (1.0f + exp(-v));
}

inline float binary_add(float a, float b) {
    return a + b;
}

inline float binary_mul(float a, float b) {
    return a * b;
}
