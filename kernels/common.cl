// Shared by every program: the element type of the tensors (T) and how a
// value is loaded as float (LD) and stored from float (ST). The runtime
// builds each program once per element type with one of XPU_F16 or XPU_U8
// defined, or neither for f32. Arithmetic is always in float; half tensors
// use vload_half / vstore_half, which every OpenCL device has, so f16 does
// not need cl_khr_fp16.

#if defined(XPU_F16)
#define T half
#define LD(p, i) vload_half((i), (p))
#define ST(p, i, v) vstore_half_rte((v), (i), (p))
#define LD16(p, i) vload_half16(0, (p) + (i))
#define ST16(p, i, v) vstore_half16_rte((v), 0, (p) + (i))
#elif defined(XPU_U8)
#define T uchar
#define LD(p, i) convert_float((p)[i])
#define ST(p, i, v) ((p)[i] = convert_uchar_sat(round(v)))
#else
#define T float
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#define LD16(p, i) vload16(0, (p) + (i))
#define ST16(p, i, v) vstore16((v), 0, (p) + (i))
#endif

// Work-group size of the one-group-per-row kernels (reductions, softmax,
// layer norm); the host launches them with exactly this many work-items.
#define ROW_GROUP 64

// Tree reduction of one float per work-item over a ROW_GROUP-wide group;
// every work-item gets the result. `op` REDUCE_SUM sums, REDUCE_MAX takes the maximum.
inline float group_reduce(__local float* scratch, float v, uint op) {
    const uint li = get_local_id(0);
    scratch[li] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = ROW_GROUP / 2; s > 0; s >>= 1) {
        if (li < s) {
            scratch[li] = op == REDUCE_SUM ? scratch[li] + scratch[li + s] : fmax(scratch[li], scratch[li + s]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
