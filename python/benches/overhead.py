"""Per-task overhead through Python: 100,000 empty tasks submitted, then
waited for all at once (the target: at most 3 us per task; StarPU's C API
measured 1.6-5 us on the same machines). Build the wheel with --release for
figures:

    maturin build --release -m python/Cargo.toml -o dist && pip install dist/xpu-*.whl
    python python/benches/overhead.py
"""

import statistics
import time

import numpy as np

import xpu

TASKS = 100_000
ROUNDS = 7


def per_task_us(fn):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e6 / TASKS


def main():
    rt = xpu.Runtime(units="cpu", profiling=False)
    x = rt.tensor(np.zeros(1, dtype=np.float32))

    def empty():
        for _ in range(TASKS):
            rt.submit("noop", [])
        rt.wait_all()

    def reading():
        access = x.read()
        for _ in range(TASKS):
            rt.submit("noop", [access])
        rt.wait_all()

    empty_us, reading_us = [], []
    for _ in range(ROUNDS):
        empty_us.append(per_task_us(empty))
        reading_us.append(per_task_us(reading))
    print(f"{TASKS} tasks, submit + wait-all, median of {ROUNDS} rounds:")
    print(f"  empty tasks             {statistics.median(empty_us):.2f} us/task")
    print(f"  tasks reading a tensor  {statistics.median(reading_us):.2f} us/task")


if __name__ == "__main__":
    main()
