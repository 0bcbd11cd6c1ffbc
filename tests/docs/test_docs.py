"""The documentation builds with warnings as errors (the README's docs command) and renders executed tutorials."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


@pytest.mark.slow
def test_docs_build_and_render_an_executed_tutorial(tmp_path):
    """tutorials/execute.py writes a notebook with outputs; the docs render those outputs, other tutorials as code."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("nbclient")
    tutorials = tmp_path / "tutorials"
    tutorials.mkdir()
    for script in SCRIPTS:
        shutil.copyfile(script, tutorials / script.name)
    execute = [sys.executable, str(ROOT / "tutorials" / "execute.py"), "--quick", "--out", str(tutorials), "01"]
    proc = subprocess.run(execute, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]

    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d", str(tmp_path / "doctrees"),
         str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "SCMAMBA_TUTORIALS_DIR": str(tutorials)},
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    assert {"index.html", "guide.html", "results.html", "api.html", "tutorials/index.html"} <= pages
    results = (out / "results.html").read_text()  # written from benchmarks/results/ by benchmarks/report.py
    assert results.count("<table") >= 5 and "regime" in results and "results.html" in (out / "index.html").read_text()
    assert {f"tutorials/{s.stem}.html" for s in SCRIPTS} <= pages  # every tutorial script is a page
    executed = (out / "tutorials" / f"{SCRIPTS[0].stem}.html").read_text()
    assert 'class="output stream' in executed and "_images/" in executed  # printed text and figures are shown
    script_only = (out / "tutorials" / f"{SCRIPTS[1].stem}.html").read_text()
    assert "cell_output" not in script_only and "_images/" not in script_only  # a script page: code, no outputs
    assert "load_query_data" in (out / "generated" / "scmamba.SCMAMBA.html").read_text()
