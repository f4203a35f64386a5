// C = alpha * op(A) * op(B) + beta * C, row-major, op() an optional
// transpose. Two kernels; the runtime picks by the device's memory:
//
// - gemm_tiled: for devices with dedicated local memory (GPUs, FPGAs,
//   NPUs). A 16x16 work-group computes a 64x64 block of C, staging 64x16
//   slices of op(A) and 16x64 slices of op(B) in local memory; each
//   work-item keeps a 4x4 block of C in registers. Any shape, transposes.
// - gemm_block: for devices whose "local" memory is ordinary cached memory
//   (CPU devices such as PoCL), where barriers only cost time: each
//   work-item keeps an 8x32 block of C in vector registers and streams its
//   rows of A and columns of B through the caches. No transposes, m a
//   multiple of 8 and n of 32.

#define TILE 64
#define TILE_K 16
#define PER_ITEM 4

__kernel __attribute__((reqd_work_group_size(16, 16, 1)))
void gemm_tiled(__global const T* a, __global const T* b, __global T* c, uint m, uint n, uint k,
                uint trans_a, uint trans_b, float alpha, float beta) {
    __local float as[TILE_K][TILE];
    __local float bs[TILE_K][TILE];
    const uint tx = get_local_id(0);
    const uint ty = get_local_id(1);
    const uint row0 = get_group_id(1) * TILE;
    const uint col0 = get_group_id(0) * TILE;
    float acc[PER_ITEM][PER_ITEM];
    for (uint i = 0; i < PER_ITEM; i++) {
        for (uint j = 0; j < PER_ITEM; j++) {
            acc[i][j] = 0.0f;
        }
    }
    for (uint k0 = 0; k0 < k; k0 += TILE_K) {
        for (uint l = ty * 16 + tx; l < TILE * TILE_K; l += 256) {
            const uint r = l / TILE_K;
            const uint ka = l % TILE_K;
            const uint gr = row0 + r;
            const uint gka = k0 + ka;
            float va = 0.0f;
            if (gr < m && gka < k) {
                va = trans_a ? LD(a, gka * m + gr) : LD(a, gr * k + gka);
            }
            as[ka][r] = va;
            const uint kb = l / TILE;
            const uint cc = l % TILE;
            const uint gkb = k0 + kb;
            const uint gc = col0 + cc;
            float vb = 0.0f;
            if (gkb < k && gc < n) {
                vb = trans_b ? LD(b, gc * k + gkb) : LD(b, gkb * n + gc);
            }
            bs[kb][cc] = vb;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint kk = 0; kk < TILE_K; kk++) {
            float ar[PER_ITEM];
            float br[PER_ITEM];
            for (uint i = 0; i < PER_ITEM; i++) {
                ar[i] = as[kk][ty + 16 * i];
                br[i] = bs[kk][tx + 16 * i];
            }
            for (uint i = 0; i < PER_ITEM; i++) {
                for (uint j = 0; j < PER_ITEM; j++) {
                    acc[i][j] = fma(ar[i], br[j], acc[i][j]);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint i = 0; i < PER_ITEM; i++) {
        const uint r = row0 + ty + 16 * i;
        for (uint j = 0; j < PER_ITEM; j++) {
            const uint cc = col0 + tx + 16 * j;
            if (r < m && cc < n) {
                float v = alpha * acc[i][j];
                if (beta != 0.0f) {
                    v = fma(beta, LD(c, r * n + cc), v);
                }
                ST(c, r * n + cc, v);
            }
        }
    }
}

#define BLOCK_ROWS 8

__kernel void gemm_block(__global const T* a, __global const T* b, __global T* c, uint m, uint n,
                         uint k, float alpha, float beta) {
    const uint j = get_global_id(0) * 32;
    const uint i = get_global_id(1) * BLOCK_ROWS;
    if (i >= m || j >= n) {
        return;
    }
    float16 lo[BLOCK_ROWS];
    float16 hi[BLOCK_ROWS];
#pragma unroll
    for (uint r = 0; r < BLOCK_ROWS; r++) {
        lo[r] = (float16)(0.0f);
        hi[r] = (float16)(0.0f);
    }
    for (uint p = 0; p < k; p++) {
        const float16 b0 = LD16(b, p * n + j);
        const float16 b1 = LD16(b, p * n + j + 16);
#pragma unroll
        for (uint r = 0; r < BLOCK_ROWS; r++) {
            const float ar = LD(a, (i + r) * k + p);
            lo[r] = fma((float16)(ar), b0, lo[r]);
            hi[r] = fma((float16)(ar), b1, hi[r]);
        }
    }
#pragma unroll
    for (uint r = 0; r < BLOCK_ROWS; r++) {
        const uint at = (i + r) * n + j;
        float16 v0 = alpha * lo[r];
        float16 v1 = alpha * hi[r];
        if (beta != 0.0f) {
            v0 = fma((float16)(beta), LD16(c, at), v0);
            v1 = fma((float16)(beta), LD16(c, at + 16), v1);
        }
        ST16(c, at, v0);
        ST16(c, at + 16, v1);
    }
}
