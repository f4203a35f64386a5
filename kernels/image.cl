// Image kernels on [H, W, C] images (C = 1 for [H, W]), u8 or f32, border
// replicated: bilinear resize, Gaussian blur, Sobel magnitude, RGB to
// gray, binary threshold, and the fused gray+blur and Sobel+threshold.
// One work-item per output value.

// A value as the tensors' type holds it (the intermediate of a fused
// kernel); image programs are built for f32 and u8.
#if defined(XPU_U8)
#define STORED(v) convert_float(convert_uchar_sat(round(v)))
#else
#define STORED(v) (v)
#endif

inline float px(__global const T* x, int y, int xx, uint c, uint height, uint width, uint channels) {
    const uint yy = (uint)clamp(y, 0, (int)height - 1);
    const uint xc = (uint)clamp(xx, 0, (int)width - 1);
    return LD(x, (yy * width + xc) * channels + c);
}

// The gray value (as stored) of the RGB pixel at a clamped position.
inline float gray_px(__global const T* x, int y, int xx, uint height, uint width) {
    const uint j = 3 * ((uint)clamp(y, 0, (int)height - 1) * width + (uint)clamp(xx, 0, (int)width - 1));
    return STORED(0.299f * LD(x, j) + 0.587f * LD(x, j + 1) + 0.114f * LD(x, j + 2));
}

__kernel void resize(__global const T* x, __global T* out, uint height, uint width,
                     uint channels, uint oh, uint ow) {
    const uint i = get_global_id(0);
    if (i >= oh * ow * channels) {
        return;
    }
    const uint c = i % channels;
    const uint ox = (i / channels) % ow;
    const uint oy = i / (channels * ow);
    const float sy = clamp(((float)oy + 0.5f) * (float)height / (float)oh - 0.5f, 0.0f, (float)(height - 1));
    const float sx = clamp(((float)ox + 0.5f) * (float)width / (float)ow - 0.5f, 0.0f, (float)(width - 1));
    const int y0 = (int)floor(sy);
    const int x0 = (int)floor(sx);
    const float fy = sy - floor(sy);
    const float fx = sx - floor(sx);
    const float top = px(x, y0, x0, c, height, width, channels) * (1.0f - fx)
        + px(x, y0, x0 + 1, c, height, width, channels) * fx;
    const float bottom = px(x, y0 + 1, x0, c, height, width, channels) * (1.0f - fx)
        + px(x, y0 + 1, x0 + 1, c, height, width, channels) * fx;
    ST(out, i, top * (1.0f - fy) + bottom * fy);
}

// Separable Gaussian blur with taps exp(-d^2 / (2 sigma^2)) for |d| <=
// radius; `norm` is 1 / (sum of the taps). Two passes: along the rows from
// the image into a transient float buffer, then along the columns of that
// buffer into the output. The taps are computed once per work-item into a
// private table (radius up to 31, sigma up to about 10), or per use beyond
// that, so the kernels need no weight buffer. With `gray` set, the first
// pass blurs the gray image of an RGB input (`channels` is then 1, the
// output's): the fused gray+blur.
#define MAX_TAPS 63

// Fills `taps` for radius `r` when they fit; returns whether they did.
inline bool fill_taps(float* taps, int r, float two_s2) {
    const bool tabled = 2 * r + 1 <= MAX_TAPS;
    if (tabled) {
        for (int d = -r; d <= r; d++) {
            taps[d + r] = exp(-(float)(d * d) / two_s2);
        }
    }
    return tabled;
}

inline float tap(const float* taps, bool tabled, int d, int r, float two_s2) {
    return tabled ? taps[d + r] : exp(-(float)(d * d) / two_s2);
}

__kernel void blur_rows(__global const T* x, __global float* tmp, uint height, uint width,
                        uint channels, uint radius, float sigma, float norm, uint gray) {
    const uint i = get_global_id(0);
    if (i >= height * width * channels) {
        return;
    }
    const uint c = i % channels;
    const int xx = (int)((i / channels) % width);
    const int yy = (int)(i / (channels * width));
    const int r = (int)radius;
    const float two_s2 = 2.0f * sigma * sigma;
    float taps[MAX_TAPS];
    const bool tabled = fill_taps(taps, r, two_s2);
    float acc = 0.0f;
    for (int dx = -r; dx <= r; dx++) {
        const float v = gray ? gray_px(x, yy, xx + dx, height, width)
                             : px(x, yy, xx + dx, c, height, width, channels);
        acc = fma(tap(taps, tabled, dx, r, two_s2), v, acc);
    }
    tmp[i] = acc * norm;
}

__kernel void blur_cols(__global const float* tmp, __global T* out, uint height, uint width,
                        uint channels, uint radius, float sigma, float norm, uint gray) {
    const uint i = get_global_id(0);
    if (i >= height * width * channels) {
        return;
    }
    const uint c = i % channels;
    const uint xx = (i / channels) % width;
    const int yy = (int)(i / (channels * width));
    const int r = (int)radius;
    const float two_s2 = 2.0f * sigma * sigma;
    float taps[MAX_TAPS];
    const bool tabled = fill_taps(taps, r, two_s2);
    float acc = 0.0f;
    for (int dy = -r; dy <= r; dy++) {
        const uint y = (uint)clamp(yy + dy, 0, (int)height - 1);
        acc = fma(tap(taps, tabled, dy, r, two_s2), tmp[(y * width + xx) * channels + c], acc);
    }
    ST(out, i, acc * norm);
}

// The Sobel magnitude; with `cut` set, thresholded as stored (`high` above
// `level`, else 0): the fused Sobel+threshold.
__kernel void sobel(__global const T* x, __global T* out, uint height, uint width, uint channels,
                    uint cut, float level, float high) {
    const uint i = get_global_id(0);
    if (i >= height * width * channels) {
        return;
    }
    const uint c = i % channels;
    const int xx = (int)((i / channels) % width);
    const int yy = (int)(i / (channels * width));
#define P(dy, dx) px(x, yy + (dy), xx + (dx), c, height, width, channels)
    const float gx = P(-1, 1) + 2.0f * P(0, 1) + P(1, 1) - P(-1, -1) - 2.0f * P(0, -1) - P(1, -1);
    const float gy = P(1, -1) + 2.0f * P(1, 0) + P(1, 1) - P(-1, -1) - 2.0f * P(-1, 0) - P(-1, 1);
#undef P
    const float magnitude = sqrt(gx * gx + gy * gy);
    ST(out, i, cut ? (STORED(magnitude) > level ? high : 0.0f) : magnitude);
}

__kernel void rgb_to_gray(__global const T* x, __global T* out, uint pixels) {
    const uint i = get_global_id(0);
    if (i >= pixels) {
        return;
    }
    ST(out, i, 0.299f * LD(x, 3 * i) + 0.587f * LD(x, 3 * i + 1) + 0.114f * LD(x, 3 * i + 2));
}

__kernel void threshold(__global const T* x, __global T* out, uint n, float level, float high) {
    const uint i = get_global_id(0);
    if (i >= n) {
        return;
    }
    ST(out, i, LD(x, i) > level ? high : 0.0f);
}
