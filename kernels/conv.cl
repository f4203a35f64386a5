// Direct 2-D convolution (NCHW input, OIHW weights, zero padding, no bias)
// and pooling, one work-item per output element.

__kernel void conv2d(__global const T* x, __global const T* w, __global T* out,
                     uint batch, uint channels, uint height, uint width, uint outputs,
                     uint kh, uint kw, uint oh, uint ow, uint stride, uint padding) {
    const uint i = get_global_id(0);
    if (i >= batch * outputs * oh * ow) {
        return;
    }
    const uint ox = i % ow;
    const uint oy = (i / ow) % oh;
    const uint o = (i / (ow * oh)) % outputs;
    const uint bi = i / (ow * oh * outputs);
    float acc = 0.0f;
    for (uint c = 0; c < channels; c++) {
        for (uint ky = 0; ky < kh; ky++) {
            const int iy = (int)(oy * stride + ky) - (int)padding;
            if (iy < 0 || iy >= (int)height) {
                continue;
            }
            for (uint kx = 0; kx < kw; kx++) {
                const int ix = (int)(ox * stride + kx) - (int)padding;
                if (ix < 0 || ix >= (int)width) {
                    continue;
                }
                const float xv = LD(x, ((bi * channels + c) * height + (uint)iy) * width + (uint)ix);
                acc = fma(xv, LD(w, ((o * channels + c) * kh + ky) * kw + kx), acc);
            }
        }
    }
    ST(out, i, acc);
}

// Pooling over planes (N*C of them) with a square window; op POOL_MAX or POOL_AVG.
__kernel void pool2d(__global const T* x, __global T* out, uint planes, uint height, uint width,
                     uint oh, uint ow, uint window, uint stride, uint op) {
    const uint i = get_global_id(0);
    if (i >= planes * oh * ow) {
        return;
    }
    const uint ox = i % ow;
    const uint oy = (i / ow) % oh;
    const uint plane = i / (ow * oh);
    float acc = op == POOL_MAX ? -INFINITY : 0.0f;
    for (uint ky = 0; ky < window; ky++) {
        for (uint kx = 0; kx < window; kx++) {
            const float v = LD(x, (plane * height + oy * stride + ky) * width + ox * stride + kx);
            acc = op == POOL_MAX ? fmax(acc, v) : acc + v;
        }
    }
    if (op == POOL_AVG) {
        acc /= (float)(window * window);
    }
    ST(out, i, acc);
}
