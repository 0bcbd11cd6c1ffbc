"""Helpers shared by the benchmark scripts: paths, data loading and splits, memory and time probes, threads, child
processes and tables.

Every benchmarked method runs in its own Python subprocess (``run_child``) so that the peak resident set size
(RSS) measured there is that method's own. A child prints its result as JSON on the last line of stdout;
:func:`run_child` parses it. The methods themselves are in :mod:`benchmarks.helpers.methods`.
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
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: The repository root; the scripts run from there as ``python -m benchmarks.<script>``.
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
#: The real data sets (``../shared/data`` beside the checkout).
SHARED_DATA = ROOT.parent / "shared" / "data"


def other_modality(mdata) -> tuple[str, str]:
    """Name and kind (``'atac'`` or ``'protein'``) of the non-RNA modality of a paired MuData.

    The names are those ``SCMAMBA.setup_mudata`` infers (``scmamba._constants.DEFAULT_MOD_NAMES``).
    """
    from scmamba._constants import find_modality

    rna = find_modality(mdata.mod, "rna")
    for kind in ("atac", "protein"):
        name = find_modality(mdata.mod, kind, exclude=[rna])
        if name is not None:
            return name, kind
    raise ValueError(f"no ATAC or protein modality in {list(mdata.mod)}")


def holdout_split(n: int, seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, test)`` cell indices of a random split (the held-out split of every benchmark script)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = round(test_fraction * n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def foscttm_within(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """FOSCTTM inside each group (batch), averaged with the groups' cell counts as weights.

    Beside the FOSCTTM over all cells: an embedding that removes batch effects loses what tells the cells of
    different batches apart, so its FOSCTTM over all cells can rise while the matching within a batch holds.
    """
    from scmamba.metrics import foscttm

    names, counts = np.unique(groups, return_counts=True)
    parts = [(n, foscttm(x[groups == g], y[groups == g])) for g, n in zip(names, counts, strict=True) if n >= 2]
    return float(sum(n * f for n, f in parts) / sum(n for n, _ in parts))


def load_data(path: str, max_cells: int, seed: int):
    """Read the MuData; keep a random ``max_cells`` cells (0: all). Returns ``(mdata, other_mod, kind)``."""
    import mudata as md

    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(path)
    if max_cells and mdata.n_obs > max_cells:
        keep = np.sort(np.random.default_rng(seed).choice(mdata.n_obs, max_cells, replace=False))
        mdata = mdata[keep].copy()
    other, kind = other_modality(mdata)
    return mdata, other, kind


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
THREADS_HELP = "threads per method process (torch, OpenMP, BLAS, numba); default $BENCH_THREADS or 1"
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


def train_probe():
    """A Lightning callback: epoch wall times in ``.times`` and, when training ends, what the trainer ran in ``.info``.

    ``.info``: ``max_epochs``, ``epochs_run``, ``check_val_every_n_epoch``, ``early_stopping`` (each
    ``EarlyStopping`` callback's ``monitor``, ``patience``, ``min_delta``, ``mode``, ``stopped_epoch`` (0: it did not
    stop the run), ``best_score``, ``wait_count``), the learning rate of every parameter group at the end
    (``final_lr``) and the learning-rate schedulers (class, monitored metric, ``patience``/``factor`` where they have
    them). Read from the trainer itself, so it shows the settings a model's ``train()`` really used.
    """
    from lightning.pytorch.callbacks import Callback, EarlyStopping

    def number(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    class TrainProbe(Callback):
        def __init__(self):
            self.times: list[float] = []
            self.info: dict = {}
            self._t0 = 0.0

        def on_train_epoch_start(self, trainer, pl_module):
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.times.append(time.perf_counter() - self._t0)

        def on_train_end(self, trainer, pl_module):
            stops = [
                {
                    "monitor": c.monitor,
                    "patience": int(c.patience),
                    "min_delta": abs(number(c.min_delta) or 0.0),
                    "mode": c.mode,
                    "stopped_epoch": int(c.stopped_epoch),
                    "best_score": number(c.best_score),
                    "wait_count": int(c.wait_count),
                }
                for c in trainer.callbacks
                if isinstance(c, EarlyStopping)
            ]
            schedulers = []
            for cfg in trainer.lr_scheduler_configs:
                sch = cfg.scheduler
                monitor = cfg.monitor  # scvi's adversarial plans step ReduceLROnPlateau themselves, on their metric
                if monitor is None and type(sch).__name__ == "ReduceLROnPlateau":
                    monitor = getattr(pl_module, "lr_scheduler_metric", None)
                rec = {"type": type(sch).__name__, "monitor": monitor}
                rec.update({a: number(getattr(sch, a)) for a in ("patience", "factor") if hasattr(sch, a)})
                schedulers.append(rec)
            self.info = {
                "max_epochs": trainer.max_epochs,
                "epochs_run": int(trainer.current_epoch),
                "check_val_every_n_epoch": trainer.check_val_every_n_epoch,
                "early_stopping": stops,
                "final_lr": [number(g["lr"]) for opt in trainer.optimizers for g in opt.param_groups],
                "lr_schedulers": schedulers,
            }

    return TrainProbe()


def machine_info() -> dict:
    """Machine, Python and key package versions, for the ``meta`` block of result files."""
    import importlib.metadata as im

    versions = {}
    for pkg in ("scmamba", "scvi-tools", "torch", "scanpy", "muon", "harmonypy", "scib-metrics", "jax"):
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


# --------------------------------------------------------------------------------------------------- timing
class Sections:
    """Wall time and peak RSS of the training and the embedding steps of one method (may alternate).

    Training peak RSS is the process peak (data loading included) over all training steps. Before each embedding
    step the kernel's peak mark is reset (:func:`reset_peak_rss`, which also resets ``ru_maxrss``), so the
    embedding peak is that of the embedding step alone (the model and data already in memory included).
    """

    def __init__(self):
        self.rec: dict = {"train_s": 0.0, "embed_s": 0.0, "peak_rss_train_gb": 0.0, "peak_rss_embed_gb": 0.0}

    @contextmanager
    def train(self):
        """Time a training step."""
        t0 = time.perf_counter()
        yield
        self.rec["train_s"] += time.perf_counter() - t0
        self.rec["peak_rss_train_gb"] = max(self.rec["peak_rss_train_gb"], peak_rss_gb())

    @contextmanager
    def embed(self):
        """Time an embedding step; its peak RSS is measured from a reset peak mark."""
        self.rec["peak_rss_train_gb"] = max(self.rec["peak_rss_train_gb"], peak_rss_gb())
        reset_ok = reset_peak_rss()
        t0 = time.perf_counter()
        yield
        self.rec["embed_s"] += time.perf_counter() - t0
        peak = window_peak_rss_gb(reset_ok)
        self.rec["peak_rss_embed_gb"] = max(self.rec["peak_rss_embed_gb"], peak)
        self.rec["peak_rss_embed_is_window"] = reset_ok


def split_reference_query(mdata, quick: bool = False, seed: int = 0):
    """Reference and query MuData by donor (Abseq: young vs aged) or library (SNARE-seq: 8 vs 4)."""
    batches = sorted(mdata.obs["batch"].astype(str).unique())
    young = [b for b in batches if b.startswith("BM")]
    if young:
        ref_batches = young
        protocol = "reference BM1-BM3 (young) -> query Aged1-Aged3"
    else:
        ref_batches = batches[:8]
        protocol = f"reference libraries {', '.join(batches[:8])} -> query {', '.join(batches[8:])}"
    in_ref = mdata.obs["batch"].astype(str).isin(ref_batches).values
    ref_idx, query_idx = np.flatnonzero(in_ref), np.flatnonzero(~in_ref)
    if quick:  # a few hundred cells each
        rng = np.random.default_rng(seed)
        ref_idx = np.sort(rng.choice(ref_idx, min(600, ref_idx.size), replace=False))
        query_idx = np.sort(rng.choice(query_idx, min(300, query_idx.size), replace=False))
    return mdata[ref_idx].copy(), mdata[query_idx].copy(), protocol
