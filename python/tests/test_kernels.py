"""Every kernel family through Python, against numpy references, with the
tolerance each states."""

import numpy as np
import pytest

import xpu

RNG = np.random.default_rng(7)


def run(rt, kernel, inputs, out_shape, out_dtype=np.float32, written="write", **params):
    """Runs `kernel` on numpy `inputs` into a fresh output; returns it."""
    tensors = [rt.tensor(x) for x in inputs]
    out = rt.zeros(out_shape, np.dtype(out_dtype).name)
    accesses = [t.read() for t in tensors] + [getattr(out, written)()]
    rt.submit(kernel, accesses, **params)
    return rt.read(out)


def test_gemm_with_transposes_and_scaling(rt):
    a = RNG.standard_normal((48, 32), dtype=np.float32)
    b = RNG.standard_normal((40, 32), dtype=np.float32)
    c0 = RNG.standard_normal((48, 40), dtype=np.float32)
    ta, tb, tc = rt.tensor(a), rt.tensor(b), rt.tensor(c0)
    rt.submit("gemm", [ta.read(), tb.read(), tc.rw()], trans_b=True, alpha=2.0, beta=0.5)
    np.testing.assert_allclose(rt.read(tc), 2.0 * a @ b.T + 0.5 * c0, rtol=1e-4, atol=1e-4)


def test_gemm_in_float64(rt):
    a = RNG.standard_normal((16, 16))
    b = RNG.standard_normal((16, 16))
    np.testing.assert_allclose(run(rt, "gemm", [a, b], (16, 16), np.float64), a @ b, rtol=1e-12)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


@pytest.mark.parametrize(
    "name, reference",
    [
        ("relu", lambda x: np.maximum(x, 0)),
        ("gelu", gelu),
        ("exp", np.exp),
        ("tanh", np.tanh),
        ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ],
)
def test_unary(rt, name, reference):
    x = RNG.uniform(-4, 4, (33, 17)).astype(np.float32)
    np.testing.assert_allclose(run(rt, name, [x], x.shape), reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, reference", [("add", np.add), ("mul", np.multiply)])
def test_binary(rt, name, reference):
    a = RNG.standard_normal((7, 9, 5), dtype=np.float32)
    b = RNG.standard_normal((7, 9, 5), dtype=np.float32)
    np.testing.assert_allclose(run(rt, name, [a, b], a.shape), reference(a, b), rtol=1e-6)


@pytest.mark.parametrize("name, reference", [("sum", np.sum), ("max", np.max)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reductions(rt, name, reference, axis):
    x = RNG.standard_normal((6, 10, 4), dtype=np.float32)
    want = reference(x, axis=axis)
    np.testing.assert_allclose(run(rt, name, [x], want.shape, axis=axis), want, rtol=1e-5, atol=1e-5)


def test_softmax_and_layer_norm(rt):
    x = RNG.standard_normal((12, 64), dtype=np.float32) * 4
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(run(rt, "softmax", [x], x.shape), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    gamma = RNG.standard_normal(64, dtype=np.float32)
    beta = RNG.standard_normal(64, dtype=np.float32)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    want = (x - mean) / np.sqrt(var + 1e-5) * gamma + beta
    got = run(rt, "layer_norm", [x, gamma, beta], x.shape, eps=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv2d_with_stride_and_padding(rt):
    x = RNG.standard_normal((2, 3, 9, 8), dtype=np.float32)
    w = RNG.standard_normal((4, 3, 3, 3), dtype=np.float32)
    stride, pad = 2, 1
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (9 + 2 * pad - 3) // stride + 1, (8 + 2 * pad - 3) // stride + 1
    want = np.zeros((2, 4, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = padded[:, :, i * stride : i * stride + 3, j * stride : j * stride + 3]
            want[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    got = run(rt, "conv2d", [x, w], want.shape, stride=stride, padding=pad)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, reduce", [("max_pool2d", np.max), ("avg_pool2d", np.mean)])
def test_pooling(rt, name, reduce):
    x = RNG.standard_normal((1, 2, 8, 10), dtype=np.float32)
    window, stride = 3, 2
    oh, ow = (8 - window) // stride + 1, (10 - window) // stride + 1
    want = np.zeros((1, 2, oh, ow), dtype=np.float32)
    for i in range(oh):
        for j in range(ow):
            want[:, :, i, j] = reduce(x[:, :, i * stride : i * stride + window, j * stride : j * stride + window], axis=(2, 3))
    got = run(rt, name, [x], want.shape, window=window, stride=stride)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def blur_reference(img, sigma):
    r = max(int(np.ceil(3 * sigma)), 1)
    taps = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
    taps /= taps.sum()
    padded = np.pad(img.astype(np.float64), r, mode="edge")
    rows = sum(t * padded[:, k : k + img.shape[1]] for k, t in enumerate(taps))
    return sum(t * rows[k : k + img.shape[0], :] for k, t in enumerate(taps))


def sobel_reference(img):
    p = np.pad(img.astype(np.float64), 1, mode="edge")
    h, w = img.shape
    at = lambda dy, dx: p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    gx = at(-1, 1) + 2 * at(0, 1) + at(1, 1) - at(-1, -1) - 2 * at(0, -1) - at(1, -1)
    gy = at(1, -1) + 2 * at(1, 0) + at(1, 1) - at(-1, -1) - 2 * at(-1, 0) - at(-1, 1)
    return np.sqrt(gx * gx + gy * gy)


def resize_reference(img, oh, ow):
    h, w = img.shape
    fy = np.clip((np.arange(oh) + 0.5) * h / oh - 0.5, 0, h - 1)
    fx = np.clip((np.arange(ow) + 0.5) * w / ow - 0.5, 0, w - 1)
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (fy - y0)[:, None], (fx - x0)[None, :]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def test_image_kernels(rt):
    img = RNG.uniform(0, 255, (37, 41)).astype(np.float32)
    np.testing.assert_allclose(run(rt, "gaussian_blur", [img], img.shape, sigma=1.5), blur_reference(img, 1.5), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(run(rt, "sobel", [img], img.shape), sobel_reference(img), rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(run(rt, "resize", [img], (20, 64)), resize_reference(img, 20, 64), rtol=1e-4, atol=1e-3)
    got = run(rt, "threshold", [img], img.shape, value=128.0, max=255.0)
    np.testing.assert_array_equal(got, np.where(img > 128.0, 255.0, 0.0))
    rgb = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    want = np.floor(rgb.astype(np.float64) @ [0.299, 0.587, 0.114] + 0.5)
    got = run(rt, "rgb_to_gray", [rgb], (9, 11), np.uint8)
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1


def spd(n):
    m = RNG.standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


def test_cholesky_tiles(rt):
    a = spd(24)
    t = rt.tensor(a)
    rt.submit("potrf", [t.rw()])
    lower = np.tril(rt.read(t))
    np.testing.assert_allclose(lower, np.linalg.cholesky(a), rtol=1e-10, atol=1e-10)
    b = RNG.standard_normal((16, 24))
    tl, tb = rt.tensor(lower), rt.tensor(b)
    rt.submit("trsm", [tl.read(), tb.rw()])
    np.testing.assert_allclose(rt.read(tb), b @ np.linalg.inv(lower).T, rtol=1e-9, atol=1e-9)
    c = spd(16)
    ta, tc = rt.tensor(b), rt.tensor(c)
    rt.submit("syrk", [ta.read(), tc.rw()])
    np.testing.assert_allclose(np.tril(rt.read(tc)), np.tril(c - b @ b.T), rtol=1e-9, atol=1e-9)


def test_lu_tiles(rt):
    a = RNG.standard_normal((20, 20)) + 40 * np.eye(20)
    t = rt.tensor(a)
    rt.submit("getrf", [t.rw()])
    lu = rt.read(t)
    lower, upper = np.tril(lu, -1) + np.eye(20), np.triu(lu)
    np.testing.assert_allclose(lower @ upper, a, rtol=1e-10, atol=1e-10)
    b = RNG.standard_normal((20, 8))
    tb = rt.tensor(b)
    rt.submit("trsm_ll", [t.read(), tb.rw()])
    np.testing.assert_allclose(rt.read(tb), np.linalg.solve(lower, b), rtol=1e-9, atol=1e-9)
    c = RNG.standard_normal((8, 20))
    tc = rt.tensor(c)
    rt.submit("trsm_ru", [t.read(), tc.rw()])
    np.testing.assert_allclose(rt.read(tc), c @ np.linalg.inv(upper), rtol=1e-9, atol=1e-9)


def test_every_unit_computes_what_the_cpu_does(every_unit):
    """Tasks pinned nowhere spread over every unit present; each result is
    checked, whichever unit ran it."""
    rt = every_unit
    xs = [RNG.standard_normal((64, 64), dtype=np.float32) for _ in range(12)]
    outs = []
    for x in xs:
        tx, ty = rt.tensor(x), rt.zeros((64, 64))
        rt.submit("gemm", [tx.read(), tx.read(), ty.write()])
        outs.append(ty)
    for x, ty in zip(xs, outs):
        np.testing.assert_allclose(rt.read(ty), x @ x, rtol=1e-3, atol=1e-3)
