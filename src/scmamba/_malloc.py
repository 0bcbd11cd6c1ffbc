"""Keep freed heap memory for reuse during a training or embedding run (glibc's malloc on Linux).

glibc hands large freed blocks back to the kernel: blocks above its mmap threshold (at most 32 MiB, raised
dynamically) are unmapped on ``free``, and free memory at the top of the heap beyond the trim threshold is released.
A minibatch of SCMAMBA at full multiome width allocates and frees several tensors of tens of MiB (the 150,000 x
``d_model`` token projection, token activations); with glibc's defaults each one is mapped and page-faulted in
again in every step, which on a CPU costs as much as the arithmetic. PyTorch's CPU allocator has no cache of its
own (its performance guide suggests preloading jemalloc or tcmalloc); glibc's ``mallopt`` gives the same reuse
without a new dependency.

``mallopt`` changes the whole process (every library in it), and glibc has no way to read its settings back, so
the tuning is opt-in: set the environment variable ``SCMAMBA_MALLOC_TUNING=1`` (before or after importing scmamba).
Then, inside each training or embedding run, freed memory stays in the heap; after the run the heap is trimmed and
the thresholds stay at glibc's own dynamic maxima (mmap 32 MiB, trim 64 MiB), which is where glibc's defaults take
a process that has freed a large block, not back at its start values. Without the variable nothing is changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
from collections.abc import Iterator

__all__ = ["reuse_freed_memory"]

#: ``mallopt`` parameter numbers (``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Inside a run: no block is mapped on its own and the heap top is never trimmed (``int`` maximum).
_RUN_THRESHOLD = 2**31 - 1
#: After a run: the largest values glibc's dynamic thresholds reach by themselves, which a process that freed a
#: large block has anyway.
_AFTER_MMAP_THRESHOLD, _AFTER_TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20
#: Set to ``1`` to tune malloc during training and embedding runs (opt-in: the settings are process-wide).
ENV_SWITCH = "SCMAMBA_MALLOC_TUNING"
_active = False  # a run is in progress


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Inside, freed blocks stay in the heap for the next minibatch; on exit the heap is trimmed.

    Applies only when the environment variable ``SCMAMBA_MALLOC_TUNING`` is ``1``, with glibc on Linux; otherwise
    it does nothing. On exit ``malloc_trim`` returns the free heap memory to the kernel and the thresholds are left at
    glibc's own dynamic maxima (mmap 32 MiB, trim 64 MiB; see the module docstring). A nested run leaves the
    settings to the outer one.
    """
    global _active
    libc = _libc()
    if libc is None or _active or os.environ.get(ENV_SWITCH, "0") != "1":
        yield
        return
    _active = True
    libc.mallopt(_M_MMAP_THRESHOLD, _RUN_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, _RUN_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM_THRESHOLD)
        libc.malloc_trim(0)
        _active = False
