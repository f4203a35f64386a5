// Element-wise kernels, one work-item per element.

// op: 0 relu, 1 gelu (tanh approximation), 2 exp.
__kernel void unary(__global const T* x, __global T* out, uint n, uint op) {
    const uint i = get_global_id(0);
    if (i >= n) {
        return;
    }
    const float v = LD(x, i);
    float r;
    if (op == 0) {
        r = fmax(v, 0.0f);
    } else if (op == 1) {
        r = 0.5f * v * (1.0f + tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
    } else {
        r = exp(v);
    }
    ST(out, i, r);
}

// op: 0 add, 1 mul.
__kernel void binary(__global const T* a, __global const T* b, __global T* out, uint n, uint op) {
    const uint i = get_global_id(0);
    if (i >= n) {
        return;
    }
    const float x = LD(a, i);
    const float y = LD(b, i);
    ST(out, i, op == 0 ? x + y : x * y);
}
