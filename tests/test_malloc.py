"""Freed memory is kept for reuse inside a training/embedding run (glibc only) and the switch turns it off."""

import json
import os
import subprocess
import sys

import pytest

from scmamba import _malloc

pytestmark = pytest.mark.skipif(_malloc._libc() is None, reason="glibc's mallopt only")

# Run in a fresh interpreter: the heap of a test session that has imported and freed much else is in no known
# state. A block above glibc's largest dynamic mmap threshold (32 MiB) is mapped and unmapped on every use by
# default, so each reuse page-faults all of it in again.
SCRIPT = """
import gc, json, resource
import torch
from scmamba import _malloc

BLOCK = 96 * 2**20

def faults_of_reuse():
    a = torch.ones(BLOCK // 4)
    del a
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(BLOCK // 4)
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

out = {"pages": BLOCK // resource.getpagesize(), "default": faults_of_reuse()}
with _malloc.reuse_freed_memory():
    out["run"] = faults_of_reuse()
    with _malloc.reuse_freed_memory():
        out["nested"] = faults_of_reuse()
    out["after_nested"] = faults_of_reuse()
out["after_run"] = faults_of_reuse()
print(json.dumps(out))
"""


def _faults(switch: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != _malloc.ENV_SWITCH}
    if switch is not None:
        env[_malloc.ENV_SWITCH] = switch
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_large_blocks_are_reused_inside_a_run_only():
    f = _faults(None)
    many, few = f["pages"] // 2, f["pages"] // 10
    assert f["default"] > many, f  # glibc's default: the block is faulted in anew on every use
    assert f["run"] < few and f["nested"] < few and f["after_nested"] < few, f  # kept inside a run, nested too
    assert f["after_run"] > many, f  # released when the run ends


def test_switch_leaves_malloc_alone():
    f = _faults("0")
    assert min(f["run"], f["nested"], f["after_run"]) > f["pages"] // 2, f
