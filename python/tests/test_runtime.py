"""The runtime through Python: dependencies, errors, threads, profiles, the
language model, and the README's snippet."""

import json
import os
import pathlib
import re
import threading

import numpy as np
import pytest

import xpu


def test_units_are_listed_with_their_kind_and_backend(rt):
    units = rt.units()
    assert [u.kind for u in units] == ["cpu"] * len(units)
    assert all(u.backend == "cpu" and not u.emulated and not u.down for u in units)
    assert "cpu 0" in repr(units[0])


def test_dependencies_follow_the_data(rt):
    x = rt.tensor(np.full(1000, -2.0, dtype=np.float32))
    y = rt.empty((1000,))
    z = rt.empty((1000,))
    # y = relu(x); z = y + y; x = z * z (after the reads of x): 0s.
    rt.submit("relu", [x.read(), y.write()])
    rt.submit("add", [y.read(), y.read(), z.write()])
    last = rt.submit("mul", [z.read(), z.read(), x.write()])
    last.wait()
    assert last.done
    np.testing.assert_array_equal(rt.read(x), np.zeros(1000, dtype=np.float32))
    rt.submit("add", [x.read(), x.read(), y.write()])
    np.testing.assert_array_equal(rt.read(y), np.zeros(1000, dtype=np.float32))


def test_read_returns_an_array_of_the_tensors_shape_and_dtype(rt):
    for dtype in ["float32", "float64", "float16", "uint8", "uint32"]:
        a = np.arange(24).reshape(2, 3, 4).astype(dtype)
        t = rt.tensor(a, name="a")
        assert t.shape == [2, 3, 4] and t.dtype == dtype and t.name == "a"
        out = rt.read(t)
        assert out.dtype == np.dtype(dtype) and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, a)
    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(rt.read(rt.tensor(fortran)), fortran)
    np.testing.assert_array_equal(rt.read(rt.tensor([1.5, 2.5])), [1.5, 2.5])


def test_read_lends_the_host_copy_without_copying_and_it_never_changes(rt):
    t = rt.tensor(np.arange(6, dtype=np.float32))
    first, second = rt.read(t), rt.read(t)
    assert np.shares_memory(first, second), "two reads of an unwritten tensor share its host copy"
    assert not first.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0
    own = rt.read(t, writable=True)
    assert own.flags.writeable and not np.shares_memory(own, first)
    own[0] = 100.0
    rt.submit("exp", [rt.tensor(np.zeros(6, dtype=np.float32)).read(), t.write()])
    np.testing.assert_array_equal(rt.read(t), np.ones(6, dtype=np.float32))
    np.testing.assert_array_equal(first, np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(rt.read(t), np.ones(6))
    del t
    np.testing.assert_array_equal(second, np.arange(6, dtype=np.float32)), "the array outlives its tensor"


def test_errors_raise_with_xpus_message(rt):
    a = rt.tensor(np.zeros((4, 3), dtype=np.float32))
    b = rt.tensor(np.zeros((4, 3), dtype=np.float32))
    c = rt.zeros((4, 3))
    with pytest.raises(xpu.ShapeError, match=r"kernel `gemm`"):
        rt.submit("gemm", [a.read(), b.read(), c.write()])
    with pytest.raises(xpu.UnknownKernelError, match="no built-in kernel is called `gemmm`"):
        rt.submit("gemmm", [a.read(), b.read(), c.write()])
    with pytest.raises(xpu.UnknownKernelError, match="`alpha`"):
        rt.submit("gemm", [a.read(), b.read(), c.write()], alpha="two")
    with pytest.raises(xpu.UnknownKernelError, match="parameter `alpha`"):
        rt.submit("gemm", [a.read(), b.read(), c.write()], alpha=[1])
    d = rt.tensor(np.zeros((4, 3), dtype=np.float64))
    with pytest.raises(xpu.DTypeError, match="dtype f64"):
        rt.submit("add", [a.read(), d.read(), c.write()])
    with pytest.raises(xpu.DTypeError, match="has no tensor type"):
        rt.tensor(np.zeros(3, dtype=np.int16))
    with pytest.raises(xpu.DTypeError, match="unknown dtype `int7`"):
        rt.zeros((2,), dtype="int7")
    with pytest.raises(xpu.XpuError, match="read before it was ever written"):
        rt.read(rt.empty((2,)))
    with pytest.raises(ValueError, match="units="):
        xpu.Runtime(units="gpus")
    with pytest.raises(xpu.XpuError, match="unknown policy `fastest`"):
        xpu.Runtime(policy="fastest")
    assert issubclass(xpu.ShapeError, xpu.XpuError)


def test_two_python_threads_submit_at_once(rt):
    results = {}

    def work(k):
        x = rt.tensor(np.full((32, 32), float(k), dtype=np.float32))
        y = rt.zeros((32, 32))
        for _ in range(50):
            rt.submit("add", [x.read(), x.read(), y.write()])
            rt.submit("add", [y.read(), y.read(), x.write()])
        results[k] = rt.read(x)

    threads = [threading.Thread(target=work, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (1, 2):
        np.testing.assert_array_equal(results[k], np.full((32, 32), k * 4.0**50, dtype=np.float32))


def test_waiting_releases_the_gil(rt):
    """A Python thread keeps running while another waits in the runtime."""
    x = rt.tensor(np.ones((256, 256), dtype=np.float32))
    y = rt.zeros((256, 256))
    for _ in range(40):
        rt.submit("gemm", [x.read(), x.read(), y.write()])
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)

    counter = threading.Thread(target=count)
    counter.start()
    rt.wait_all()
    stop.set()
    counter.join()
    assert ticks, "the counting thread never ran while the runtime waited"


def test_a_profile_writes_a_chrome_trace(rt, tmp_path):
    x = rt.tensor(np.ones(64, dtype=np.float32))
    rt.submit("exp", [x.read(), rt.zeros((64,)).write()])
    rt.wait_all()
    profile = rt.profile()
    assert profile.tasks >= 1
    path = tmp_path / "trace.json"
    profile.write_chrome_trace(path)
    events = json.loads(path.read_text())["traceEvents"]
    assert any(e.get("name") == "exp" for e in events)
    assert "xpu_tasks" in rt.metrics()


def default_model():
    data = os.environ.get("XPU_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "xpu"
    )
    return pathlib.Path(data) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_generate_on_the_lpu():
    if not default_model().exists():
        assert not os.environ.get("CI"), "CI fetches the model (scripts/fetch-models.sh)"
        pytest.skip("no model: scripts/fetch-models.sh fetches it")
    rt = xpu.Runtime()
    first = rt.generate("The capital of France is", max_tokens=8)
    assert first.strip(), "no text generated"
    assert rt.generate("The capital of France is", max_tokens=8) == first, "greedy decoding is deterministic"


def test_the_readmes_python_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## From Python", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(snippet, "README.md", "exec"), {})
    assert (tmp_path / "trace.json").exists()
