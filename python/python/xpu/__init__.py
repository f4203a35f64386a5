"""xpu: a heterogeneous compute runtime.

Submit kernels on tensors; xpu works out the dependencies, places each task
on a processing unit (CPU, GPU, TPU, NPU, LPU, FPGA, VPU), moves the data
that unit needs, runs a real kernel there, and accounts for time and bytes
moved.

>>> import numpy as np, xpu
>>> rt = xpu.Runtime(units="cpu")
>>> a = rt.tensor(np.eye(2, dtype=np.float32))
>>> b = rt.tensor(np.array([[1, 2], [3, 4]], dtype=np.float32))
>>> c = rt.zeros((2, 2))
>>> task = rt.submit("gemm", [a.read(), b.read(), c.write()])
>>> rt.read(c).tolist()
[[1.0, 2.0], [3.0, 4.0]]
"""

from ._native import (
    Access,
    DTypeError,
    Profile,
    Runtime,
    ShapeError,
    Task,
    TaskError,
    Tensor,
    Unit,
    UnknownKernelError,
    XpuError,
    __version__,
)

__all__ = [
    "Access",
    "DTypeError",
    "Profile",
    "Runtime",
    "ShapeError",
    "Task",
    "TaskError",
    "Tensor",
    "Unit",
    "UnknownKernelError",
    "XpuError",
    "__version__",
]
