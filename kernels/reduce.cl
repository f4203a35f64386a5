// Kernels that reduce along an axis, one work-group of ROW_GROUP work-items
// per output (reduce) or per row (softmax, layer norm).

// x viewed as [outer, len, inner], reduced along len; op REDUCE_SUM or REDUCE_MAX.
__kernel __attribute__((reqd_work_group_size(ROW_GROUP, 1, 1)))
void reduce(__global const T* x, __global T* out, uint outer, uint len, uint inner, uint op) {
    __local float scratch[ROW_GROUP];
    const uint o = get_group_id(0);
    const uint li = get_local_id(0);
    const uint base = (o / inner) * len * inner + o % inner;
    float acc = op == REDUCE_SUM ? 0.0f : -INFINITY;
    for (uint j = li; j < len; j += ROW_GROUP) {
        const float v = LD(x, base + j * inner);
        acc = op == REDUCE_SUM ? acc + v : fmax(acc, v);
    }
    acc = group_reduce(scratch, acc, op);
    if (li == 0) {
        ST(out, o, acc);
    }
}

// Softmax along rows of length n.
__kernel __attribute__((reqd_work_group_size(ROW_GROUP, 1, 1)))
void softmax(__global const T* x, __global T* out, uint n) {
    __local float scratch[ROW_GROUP];
    const uint base = get_group_id(0) * n;
    const uint li = get_local_id(0);
    float m = -INFINITY;
    for (uint j = li; j < n; j += ROW_GROUP) {
        m = fmax(m, LD(x, base + j));
    }
    m = group_reduce(scratch, m, 1);
    float s = 0.0f;
    for (uint j = li; j < n; j += ROW_GROUP) {
        s += exp(LD(x, base + j) - m);
    }
    s = group_reduce(scratch, s, 0);
    for (uint j = li; j < n; j += ROW_GROUP) {
        ST(out, base + j, exp(LD(x, base + j) - m) / s);
    }
}

// Layer norm over rows of length n, scaled by gamma and shifted by beta.
__kernel __attribute__((reqd_work_group_size(ROW_GROUP, 1, 1)))
void layer_norm(__global const T* x, __global const T* gamma, __global const T* beta,
                __global T* out, uint n, float eps) {
    __local float scratch[ROW_GROUP];
    const uint base = get_group_id(0) * n;
    const uint li = get_local_id(0);
    float s = 0.0f;
    for (uint j = li; j < n; j += ROW_GROUP) {
        s += LD(x, base + j);
    }
    const float mean = group_reduce(scratch, s, 0) / (float)n;
    float q = 0.0f;
    for (uint j = li; j < n; j += ROW_GROUP) {
        const float d = LD(x, base + j) - mean;
        q += d * d;
    }
    const float inv = rsqrt(group_reduce(scratch, q, 0) / (float)n + eps);
    for (uint j = li; j < n; j += ROW_GROUP) {
        ST(out, base + j, (LD(x, base + j) - mean) * inv * LD(gamma, j) + LD(beta, j));
    }
}
