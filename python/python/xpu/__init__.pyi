"""Type stubs of the xpu package (its native module, xpu._native)."""

from os import PathLike
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

DTypeName = Literal["float32", "float64", "float16", "uint8", "uint32", "f32", "f64", "f16", "u8", "u32"]
PolicyName = Literal["eager", "round-robin", "work-stealing", "dmda", "dmdas", "energy"]

class XpuError(Exception):
    """An error from the xpu runtime; its message is xpu's."""

class ShapeError(XpuError):
    """Shapes that do not fit a kernel, or data of the wrong size."""

class DTypeError(XpuError):
    """A dtype a kernel cannot use, or that has no tensor type."""

class UnknownKernelError(XpuError):
    """A kernel name or parameter that no kernel has."""

class TaskError(XpuError):
    """A task failed, or did not run because a task it depends on failed."""

class Unit:
    """One processing unit."""

    id: int
    kind: str
    backend: str
    device: str
    emulated: bool
    down: bool
    node: int

class Access:
    """A tensor and how a task accesses it."""

class Tensor:
    """A tensor: a shape, a dtype and its data wherever the runtime keeps it."""

    @property
    def shape(self) -> list[int]: ...
    @property
    def dtype(self) -> str: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def nbytes(self) -> int: ...
    def read(self) -> Access:
        """The tensor accessed read-only by a task."""
    def write(self) -> Access:
        """The tensor written by a task (its previous content is not needed)."""
    def rw(self) -> Access:
        """The tensor read and written by a task."""

class Task:
    """A submitted task."""

    @property
    def done(self) -> bool: ...
    @property
    def id(self) -> int: ...
    def wait(self) -> None:
        """Waits (without holding the GIL) for the task; raises its error."""

class Profile:
    """What a runtime recorded."""

    @property
    def tasks(self) -> int: ...
    def write_chrome_trace(self, path: Union[str, PathLike[str]]) -> None:
        """Writes the trace-event JSON that Perfetto and chrome://tracing open."""

class Runtime:
    """A runtime over the machine's processing units.

    policy: the scheduling policy (default "dmda").
    units: "all" (every device found) or "cpu" (CPU units only).
    cpu_units: how many CPU units (default: one per core).
    """

    def __init__(
        self,
        policy: Optional[PolicyName] = None,
        units: Literal["all", "cpu"] = "all",
        cpu_units: Optional[int] = None,
        profiling: bool = True,
    ) -> None: ...
    @property
    def policy(self) -> str: ...
    def units(self) -> list[Unit]:
        """Every processing unit, in id order."""
    def tensor(self, array: npt.ArrayLike, name: Optional[str] = None) -> Tensor:
        """A tensor holding a copy of `array`."""
    def zeros(self, shape: Sequence[int], dtype: DTypeName = "float32", name: Optional[str] = None) -> Tensor:
        """A zero-filled tensor."""
    def empty(self, shape: Sequence[int], dtype: DTypeName = "float32", name: Optional[str] = None) -> Tensor:
        """A tensor with no content yet."""
    def submit(self, kernel: str, accesses: Sequence[Access], **params: Union[bool, int, float, str]) -> Task:
        """Submits `kernel` on `accesses`, with its parameters as keywords."""
    def wait(self, task: Task) -> None:
        """Waits for `task`; raises its error."""
    def wait_all(self) -> None:
        """Waits until every task submitted so far has finished."""
    def read(self, tensor: Tensor, writable: bool = False) -> np.ndarray[Any, Any]:
        """Waits for the tasks that write `tensor`; returns its content.

        By default a read-only array over the tensor's host copy itself (no
        copy; it never changes, as later writes go elsewhere); with
        `writable=True`, a copy of its own.
        """
    def generate(
        self,
        prompt: str,
        max_tokens: int = 32,
        model: Optional[Union[str, PathLike[str]]] = None,
        unit: Optional[str] = None,
    ) -> str:
        """Continues `prompt` with a language model; returns the generated text."""
    def profile(self) -> Profile:
        """What the runtime recorded so far."""
    def metrics(self) -> str:
        """The runtime's counters in the Prometheus text format."""
