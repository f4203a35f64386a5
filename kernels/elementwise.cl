// Element-wise kernels, one work-item per element.

// op: a UNARY_* code; the expressions are in ops.cl.
__kernel void unary(__global const T* x, __global T* out, uint n, uint op) {
    const uint i = get_global_id(0);
    if (i >= n) {
        return;
    }
    ST(out, i, apply_unary(op, LD(x, i)));
}

// op: a BINARY_* code.
__kernel void binary(__global const T* a, __global const T* b, __global T* out, uint n, uint op) {
    const uint i = get_global_id(0);
    if (i >= n) {
        return;
    }
    ST(out, i, apply_binary(op, LD(a, i), LD(b, i)));
}
