"""Multi-process training (Lightning DDP, gloo on CPU): negatives gathered across processes, saving on rank 0."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_ddp_two_cpu_processes(tmp_path):
    script = Path(__file__).with_name("ddp_train.py")
    env = {**os.environ, "PL_DISABLE_FORK": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["world_size"] == 2
    # each process contrasts its 64 cells against the 128 cells of both processes
    assert all(n == 128 for n in hist["n_contrast"])
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    # written once, by rank 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedding_rank0.npy", "history.json", "model"]
