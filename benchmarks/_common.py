"""Helpers shared by ``integration.py`` and ``scaling.py``: memory and time probes, child processes, tables.

Every benchmarked method runs in its own Python subprocess (as in ``holdout.py``) so that the peak resident set
size (RSS) measured there is that method's own. A child prints its result as JSON on the last line of stdout;
:func:`run_child` parses it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def quick_scmamba_config() -> dict:
    """SCMAMBA configuration of the ``--quick`` modes: the package's small configuration."""
    from scmamba import SCMAMBA

    return SCMAMBA.small_config()


def peak_rss_gb() -> float:
    """Peak RSS of this process in GiB from ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (kB on Linux)."""
    scale = 1024**3 if sys.platform == "darwin" else 1024**2  # macOS reports bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _status_kb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``/proc/self/clear_refs``, value 5).

    Afterwards :func:`window_peak_rss_gb` gives the peak since the reset. Returns False where this is not
    possible (then the window peak falls back to the whole-process peak, which is an upper bound).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def window_peak_rss_gb(reset_ok: bool) -> float:
    """Peak RSS in GiB since :func:`reset_peak_rss` (``VmHWM``), or the process peak when no reset was possible."""
    hwm = _status_kb("VmHWM") if reset_ok else None
    return hwm / 1024**2 if hwm is not None else peak_rss_gb()


#: Threads per benchmark process unless ``--threads`` / ``BENCH_THREADS`` say otherwise. One, because on a machine
#: whose cores are shared with other work, multi-threaded torch/OpenMP stalls badly (2 threads ran up to 20x
#: slower than 1 on a busy 2-core machine); on a dedicated machine pass ``--threads`` with the free cores.
DEFAULT_THREADS = 1
_THREAD_VARS = ("BENCH_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def default_threads() -> int:
    """``BENCH_THREADS`` from the environment, else :data:`DEFAULT_THREADS`."""
    return int(os.environ.get("BENCH_THREADS", DEFAULT_THREADS))


def child_env(threads: int) -> dict:
    """Environment for a child process: torch, OpenMP, BLAS and numba all limited to ``threads`` threads."""
    return {**os.environ, **dict.fromkeys(_THREAD_VARS, str(threads))}


def limit_threads(threads: int) -> None:
    """Limit this (parent) process's BLAS/OpenMP pools and numba to ``threads`` threads (metrics, UMAP)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass


def set_threads() -> int:
    """Use ``BENCH_THREADS`` torch threads (set by :func:`child_env`); returns the number."""
    import torch

    n = default_threads()
    torch.set_num_threads(n)
    return n


def epoch_timer():
    """A Lightning callback recording the wall time of every training epoch (validation included) in ``.times``."""
    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self):
            self.times: list[float] = []
            self._t0 = 0.0

        def on_train_epoch_start(self, trainer, pl_module):
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.times.append(time.perf_counter() - self._t0)

    return EpochTimer()


def machine_info() -> dict:
    """Machine, Python and key package versions, for the ``meta`` block of result files."""
    import importlib.metadata as im

    versions = {}
    for pkg in ("scmamba", "scvi-tools", "torch", "scanpy", "muon", "harmonypy"):
        try:
            versions[pkg] = im.version(pkg)
        except im.PackageNotFoundError:
            versions[pkg] = None
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def run_child(cmd: list[str], timeout: float | None, label: str, threads: int | None = None) -> dict:
    """Run one benchmark child process; return its JSON result (last stdout line) or an error record.

    A failing or timed-out child does not stop the benchmark: the record gets ``status`` ``'failed'`` or
    ``'timeout'`` and the tail of stderr is printed.
    """
    t0 = time.perf_counter()
    try:
        env = child_env(threads) if threads else None
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"[{label}] timed out after {timeout:.0f} s", file=sys.stderr, flush=True)
        return {"status": "timeout", "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        print(f"[{label}] failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {"status": "failed", "error": last[0][:300]}
    result = json.loads(lines[-1])
    result.setdefault("status", "ok")
    result["child_wall_s"] = round(wall, 1)
    return result


def fmt(value, digits: int = 3) -> str:
    """Format a table cell: ``n/a`` for missing/NaN, rounded floats, plain text otherwise."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if value != 0 and digits >= 2 and abs(value) < 10 ** -(digits - 1):
            return f"{value:.2g}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    rows: list[dict], columns: list[str], headers: dict[str, str] | None = None, digits: dict[str, int] | None = None
) -> str:
    """A GitHub Markdown table of ``rows`` (dicts) restricted to ``columns`` (``digits``: decimals per column)."""
    headers, digits = headers or {}, digits or {}
    lines = [
        "| " + " | ".join(headers.get(c, c) for c in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c), digits.get(c, 3)) for c in columns) + " |")
    return "\n".join(lines)


def to_jsonable(obj):
    """Convert numpy scalars/arrays and NaN to JSON-friendly Python values (NaN -> None)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def fit_totalvi(ref, other: str, epochs: int, *also_dense):
    """scvi-tools TOTALVI with defaults on ``ref`` (protein modality ``other``), trained for ``epochs``.

    TOTALVI needs dense protein counts: the protein matrix of ``ref`` and of every MuData in ``also_dense`` (query
    sets) is densified in place.
    """
    import numpy as np
    import scvi

    for m in (ref, *also_dense):
        X = m.mod[other].X
        m.mod[other].X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)
    scvi.model.TOTALVI.setup_mudata(
        ref, batch_key="batch", modalities={"rna_layer": "rna", "protein_layer": other, "batch_key": "rna"}
    )
    model = scvi.model.TOTALVI(ref)
    model.train(max_epochs=epochs, enable_progress_bar=False)
    return model


def fit_multivi(ref, other: str, epochs: int):
    """scvi-tools MULTIVI with defaults on all genes and peaks of ``ref`` (ATAC modality ``other``)."""
    import scvi

    scvi.model.MULTIVI.setup_mudata(
        ref, batch_key="batch", modalities={"rna_layer": "rna", "atac_layer": other, "batch_key": "rna"}
    )
    model = scvi.model.MULTIVI(ref, n_genes=ref["rna"].n_vars, n_regions=ref[other].n_vars)
    model.train(max_epochs=epochs, enable_progress_bar=False)
    return model
