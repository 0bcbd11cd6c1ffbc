"""DDP from the stream (two gloo CPU processes on a backed file): each process reads its own share of every epoch."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def test_ddp_processes_stream_disjoint_shares(tmp_path):
    script = Path(__file__).with_name("ddp_stream.py")
    env = {**os.environ, "PL_DISABLE_FORK": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    shares = [np.load(tmp_path / f"share_rank{r}.npy") for r in range(2)]
    assert not set(shares[0]) & set(shares[1])  # disjoint
    assert len(shares[0]) == len(shares[1]) == 384 // 2  # equal, and together every cell (384 = 2 x 6 x 32)
    steps = [int(np.load(tmp_path / f"steps_rank{r}.npy")[0]) for r in range(2)]
    assert steps[0] == steps[1] == 2 * 6
