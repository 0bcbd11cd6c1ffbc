"""Opt-in (SCMAMBA_MALLOC_TUNING=1): freed memory is reused inside a run (glibc); by default malloc is untouched."""

import json
import os
import subprocess
import sys

import pytest

from scmamba import _malloc

pytestmark = pytest.mark.skipif(_malloc._libc() is None, reason="glibc's mallopt only")

# Run in a fresh interpreter: the heap of a test session that has imported and freed much else is in no known
# state. A block above glibc's largest dynamic mmap threshold (32 MiB) is mapped and unmapped on every use by
# default, so each use page-faults all of it in again. Inside a run, a freed block can be split by small
# allocations made meanwhile (other threads, the interpreter) and the next use then extends the heap once more, so
# a run is judged by how many of its uses after the first fault the block in (at most one, against every one by
# default); the end of a run by the first use after it, which finds the memory returned to the kernel.
SCRIPT = """
import gc, json, resource
import scmamba.model  # the package as it is when train and get_latent_representation run (subpackages load lazily)
import torch
from scmamba import _malloc

BLOCK = 96 * 2**20

def uses(n=6):
    faults = []
    for _ in range(n):
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = torch.ones(BLOCK // 4)
        del a
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults

out = {"pages": BLOCK // resource.getpagesize(), "default": uses()}
with _malloc.reuse_freed_memory():
    out["run"] = uses()
    with _malloc.reuse_freed_memory():
        out["nested"] = uses()
    out["after_nested"] = uses()
out["after_run"] = uses()
print(json.dumps(out))
"""


def _faults(switch: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != _malloc.ENV_SWITCH}
    if switch is not None:
        env[_malloc.ENV_SWITCH] = switch
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_large_blocks_are_reused_inside_a_run_only():
    f = _faults("1")
    many, few = f["pages"] // 2, f["pages"] // 10
    assert min(f["default"]) > many, f  # glibc's default: the block is faulted in anew on every use
    for phase in ("run", "nested", "after_nested"):  # kept in a run, nested too
        assert sum(faults > few for faults in f[phase][1:]) <= 1, f
    assert f["after_run"][0] > many, f  # returned to the kernel when the run ends


@pytest.mark.parametrize("switch", [None, "0"])
def test_malloc_is_left_alone_by_default(switch):
    f = _faults(switch)
    assert min(min(f[phase]) for phase in ("run", "nested", "after_run")) > f["pages"] // 2, f
