"""Runtime details that decide a small model's speed: devices, threads, the CPU.

Process-wide settings live here as functions the entry points call (the CLI,
`bench`, the app's main): `setup_process`. Library calls (`train`, `DTPolicy`)
never make them as a side effect; `torch_threads` changes the thread count only
for the duration of a block.

Two things, both measured on this project's machine (AMD EPYC, AVX-512 BF16; the
second does not hold on an AVX2 EPYC, see `ONEDNN_FP32`):

* **glibc gives freed memory back too eagerly.** A lock-step step at batch 32
  allocates ~14 MB of activations; with glibc's defaults those pages are
  returned to the OS after each step and faulted back in on the next (~3500
  page faults, ~4 ms of an ~10 ms step). `retain_freed_memory` raises the
  mmap and trim thresholds so freed activations are reused in place.
* **MKL's fp32 GEMM runs at about half speed on AMD CPUs**, and handing its
  threads back to ATen's OpenMP pool stalls the next op by 10-20 us. oneDNN
  (the `mkldnn` ops) has its own AVX-512 kernels on the same OpenMP pool; the
  acting engine (`acting.py`) sends its larger matmuls there (`linear`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

# mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # allocations above this still get their own mapping
TRIM_THRESHOLD = 64 << 20  # free memory kept at the top of the heap

_retained: bool | None = None


def retain_freed_memory() -> bool:
    """Keep freed activation memory in the heap (glibc only; a no-op elsewhere).

    Process-wide and idempotent. Costs at most ``TRIM_THRESHOLD`` of resident
    memory that would otherwise be returned; large arrays (datasets, frames)
    are unaffected because they stay above ``MMAP_THRESHOLD``. Returns whether
    the setting is in effect.
    """
    global _retained
    if _retained is None:
        _retained = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _retained = bool(
                    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                )
            except (OSError, AttributeError):  # not glibc (musl, ...)
                _retained = False
    return _retained


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; ``"cpu"``/``"cuda"``/``"cuda:1"``
    as given, with a clear error when CUDA is asked for and absent."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no CUDA GPU")
    return device


_THREADS_LOCK = threading.Lock()
_threads_users = 0  # blocks inside `torch_threads` now
_threads_before = 0  # the count to restore when the last one leaves


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads (0: leave as is), then restore the count.

    The count is process-wide while the block runs. Overlapping blocks (two trainings
    in threads of one server) restore the count from before the first of them when
    the last one ends, whatever order they end in."""
    global _threads_users, _threads_before
    if n <= 0:
        yield
        return
    with _THREADS_LOCK:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
        _threads_users += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


def setup_process(threads: int = 0) -> None:
    """The process-wide settings for a command-line or server process: the torch
    thread count (0: torch's default) and `retain_freed_memory`."""
    if threads > 0:
        torch.set_num_threads(threads)
    retain_freed_memory()


def _onednn_linear():
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _onednn_linear()
# Below this many multiply-adds oneDNN's fixed cost (~12 us a call) outweighs
# its faster kernel, and ATen's own path wins.
ONEDNN_MIN_MACS = 1_500_000
# fp32 through oneDNN only on AVX-512 CPUs, where it was measured faster than ATen
# (MKL). On an AVX2 EPYC (Zen 3) MKL's fp32 GEMM is as fast at large sizes and
# ~1.3x faster at batch 1's (59 x 128 @ 128 x 384: 83 against 106 us packed), so
# there fp32 stays on ATen. bf16 goes to oneDNN where it has bf16 kernels.
ONEDNN_FP32 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _onednn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


ONEDNN_BF16 = _onednn_bf16()  # oneDNN has bf16 kernels for this CPU (AVX-512 or AMX)


def _onednn_takes(dtype: torch.dtype) -> bool:
    return (dtype == torch.bfloat16 and ONEDNN_BF16) or (dtype == torch.float32 and ONEDNN_FP32)


def pack_weight(weight: torch.Tensor) -> torch.Tensor | None:
    """``weight`` reordered once into oneDNN's blocked layout (else oneDNN reorders
    it on every call), or None where oneDNN can't take it."""
    if _ONEDNN_LINEAR is None or weight.device.type != "cpu" or not _onednn_takes(weight.dtype):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        _disable_onednn(exc)
        return None


def _disable_onednn(exc: Exception) -> None:
    """A private oneDNN op raised (a torch build or CPU it doesn't support): fall back
    to ATen's matmuls for the rest of the process, which compute the same maths."""
    global _ONEDNN_LINEAR
    if _ONEDNN_LINEAR is not None:
        warnings.warn(f"oneDNN linear failed ({exc}); using plain matmuls", stacklevel=3)
    _ONEDNN_LINEAR = None


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    relu: bool = False,
    residual: torch.Tensor | None = None,
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, then ReLU or ``+ residual`` (not both), for
    inference: the same maths, through oneDNN with the ReLU or add fused when
    the matmul is large enough to gain from it. ``packed``: `pack_weight(weight)`."""
    assert not (relu and residual is not None)
    n_out, n_in = weight.shape
    rows = x.numel() // n_in
    if (
        _ONEDNN_LINEAR is None
        or x.device.type != "cpu"
        or not _onednn_takes(x.dtype)
        or rows * n_in * n_out < ONEDNN_MIN_MACS
    ):
        y = F.linear(x, weight, bias)  # a fresh tensor: the ReLU or add can go in place
        if relu:
            return y.relu_()
        if residual is None:
            return y
        return y.add_(residual) if residual.dtype == y.dtype else residual + y
    w = weight if packed is None else packed
    x2 = x.reshape(rows, n_in)
    try:
        if residual is None:
            y = _ONEDNN_LINEAR(x2, w, bias, "relu" if relu else "none", [], "")
        else:
            y = _ONEDNN_LINEAR.binary(x2, residual.reshape(rows, n_out), w, bias, "add")
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        _disable_onednn(exc)
        return linear(x, weight, bias, relu, residual)
    return y.view(*x.shape[:-1], n_out)
