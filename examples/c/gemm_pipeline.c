/*
 * A GEMM pipeline through xpu's C ABI: C = A B on whichever unit the
 * runtime picks, then ReLU (a built-in kernel named by its spec), then a
 * user CPU kernel written in C that adds a bias, read back and checked
 * against naive loops. Also shows an error: a kernel that does not exist.
 *
 *   cargo build -p xpu-capi
 *   cc examples/c/gemm_pipeline.c -Iinclude -Ltarget/debug -lxpu_c \
 *      -Wl,-rpath,$PWD/target/debug -o gemm_pipeline
 *   ./gemm_pipeline            # every unit
 *   ./gemm_pipeline --cpu-only # CPU units only (as the valgrind check runs it)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpu.h"

#define N 64

/* Stops the program with xpu's message when a call fails. */
#define CHECK(call)                                                              \
    do {                                                                         \
        XpuStatus status_ = (call);                                              \
        if (status_ != XPU_STATUS_OK) {                                          \
            fprintf(stderr, "%s failed (%d): %s\n", #call, (int)status_,         \
                    xpu_last_error());                                           \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* y += bias, element by element: args[0] is the bias (read), args[1] y. */
static int add_bias(void *user_data, const XpuBuffer *args, size_t nargs) {
    (void)user_data;
    if (nargs != 2 || args[0].dtype != XPU_DTYPE_F32 || args[0].bytes != args[1].bytes) {
        return 2;
    }
    const float *bias = (const float *)args[0].data;
    float *y = (float *)args[1].data;
    for (size_t i = 0; i < args[1].bytes / sizeof(float); i++) {
        y[i] += bias[i];
    }
    return 0;
}

int main(int argc, char **argv) {
    XpuRuntimeOptions options;
    CHECK(xpu_runtime_options_default(&options));
    options.device_discovery = !(argc > 1 && strcmp(argv[1], "--cpu-only") == 0);
    XpuRuntime *rt = NULL;
    CHECK(xpu_runtime_new(&options, &rt));

    for (size_t i = 0; i < xpu_unit_count(rt); i++) {
        XpuUnitInfo unit;
        CHECK(xpu_unit_info(rt, i, &unit));
        printf("unit %zu: %s on %s (%s)%s\n", unit.id, unit.kind, unit.backend, unit.device,
               unit.emulated ? " emulated" : "");
    }

    static float a[N * N], b[N * N], bias[N * N], out[N * N], expected[N * N];
    for (size_t i = 0; i < N * N; i++) {
        a[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
        b[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
        bias[i] = (float)(i % 3) * 0.25f;
    }
    size_t shape[2] = {N, N};
    XpuTensor *ta = NULL, *tb = NULL, *tc = NULL, *tbias = NULL, *ty = NULL;
    CHECK(xpu_tensor_new(rt, XPU_DTYPE_F32, shape, 2, a, sizeof a, &ta));
    CHECK(xpu_tensor_new(rt, XPU_DTYPE_F32, shape, 2, b, sizeof b, &tb));
    CHECK(xpu_tensor_new(rt, XPU_DTYPE_F32, shape, 2, bias, sizeof bias, &tbias));
    CHECK(xpu_tensor_new(rt, XPU_DTYPE_F32, shape, 2, NULL, 0, &tc));
    CHECK(xpu_tensor_new(rt, XPU_DTYPE_F32, shape, 2, NULL, 0, &ty));

    uint32_t modes[2] = {XPU_MODE_READ, XPU_MODE_READ_WRITE};
    CHECK(xpu_register_cpu_kernel(rt, "add_bias", modes, 2, add_bias, NULL));

    /* c = a b; y = relu(c); y += bias. The runtime orders them by data. */
    CHECK(xpu_submit_gemm(rt, NULL, ta, tb, tc, NULL));
    XpuAccess relu[2] = {{tc, XPU_MODE_READ}, {ty, XPU_MODE_WRITE}};
    CHECK(xpu_submit(rt, "relu", relu, 2, NULL));
    XpuAccess biased[2] = {{tbias, XPU_MODE_READ}, {ty, XPU_MODE_READ_WRITE}};
    XpuTask *last = NULL;
    CHECK(xpu_submit(rt, "{\"name\": \"add_bias\"}", biased, 2, &last));
    CHECK(xpu_task_wait(rt, last));
    CHECK(xpu_tensor_read(rt, ty, out, sizeof out));

    XpuStatus unknown = xpu_submit(rt, "no_such_kernel", relu, 2, NULL);
    printf("unknown kernel: status %d: %s\n", (int)unknown, xpu_last_error());

    double worst = 0.0;
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            double sum = 0.0;
            for (size_t k = 0; k < N; k++) {
                sum += (double)a[i * N + k] * (double)b[k * N + j];
            }
            expected[i * N + j] = (float)((sum > 0.0 ? sum : 0.0) + bias[i * N + j]);
            double err = fabs((double)out[i * N + j] - (double)expected[i * N + j]);
            worst = err > worst ? err : worst;
        }
    }

    xpu_task_free(last);
    xpu_tensor_free(ta);
    xpu_tensor_free(tb);
    xpu_tensor_free(tc);
    xpu_tensor_free(tbias);
    xpu_tensor_free(ty);
    xpu_runtime_free(rt);

    /* f32 GEMM over 64 terms of size <= 0.25: 1e-4 absolute is ample. */
    printf("max |error| vs naive loops: %.3g\n", worst);
    if (unknown != XPU_STATUS_UNKNOWN_KERNEL || worst > 1e-4) {
        fprintf(stderr, "FAILED\n");
        return 1;
    }
    printf("ok\n");
    return 0;
}
