"""``scmamba --help`` / ``--version`` answer without importing PyTorch or scvi-tools (they take seconds to load)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

CHECK = """
import sys
from scmamba.cli import main
try:
    main([{arg!r}])
except SystemExit as exit:
    assert exit.code == 0, exit.code
heavy = sorted(m for m in ("torch", "scvi", "lightning", "scanpy", "mudata") if m in sys.modules)
print("HEAVY", heavy)
"""


def _run(arg: str) -> str:
    proc = subprocess.run([sys.executable, "-c", CHECK.format(arg=arg)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_version_is_printed_without_heavy_imports():
    out = _run("--version")
    assert f"scmamba {version('scmamba')}" in out
    assert "HEAVY []" in out


def test_help_lists_the_commands_without_heavy_imports():
    out = _run("--help")
    assert "train" in out and "demo" in out and "--version" in out
    assert "HEAVY []" in out


def test_the_package_still_exposes_its_api_on_first_use():
    code = (
        "import scmamba; from scmamba import SCMAMBA; "
        "print(scmamba.SCMAMBA is SCMAMBA, callable(scmamba.tl.match_cells))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == ["True", "True"], proc.stderr[-2000:]
