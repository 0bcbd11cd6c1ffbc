"""Freed memory is kept for reuse inside a training/embedding run (glibc only) and the switch turns it off."""

import gc
import resource

import pytest
import torch

from scmamba import _malloc

pytestmark = pytest.mark.skipif(_malloc._libc() is None, reason="glibc's mallopt only")

BLOCK = 96 * 2**20  # above glibc's largest mmap threshold: by default mapped and unmapped on every use


def _faults_of_reuse() -> int:
    """Minor page faults of allocating, touching and freeing a large block, after a first such round."""
    a = torch.ones(BLOCK // 4)
    del a
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(BLOCK // 4)
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_large_blocks_are_reused_inside_a_run_only(monkeypatch):
    pages = BLOCK // resource.getpagesize()
    assert _faults_of_reuse() > pages // 2  # glibc's default: every large block is faulted in anew
    with _malloc.reuse_freed_memory():
        assert _faults_of_reuse() < pages // 10
        with _malloc.reuse_freed_memory():  # nested: the outer run's settings hold
            assert _faults_of_reuse() < pages // 10
        assert _faults_of_reuse() < pages // 10
    assert _faults_of_reuse() > pages // 2  # released at the end of the run
    monkeypatch.setenv(_malloc.ENV_SWITCH, "0")
    with _malloc.reuse_freed_memory():
        assert _faults_of_reuse() > pages // 2
