"""The documentation builds with warnings as errors (the README's docs command), tutorials included as pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("jupytext")
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d", str(tmp_path / "doctrees"),
         str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    assert {"index.html", "api.html", "tutorials/index.html"} <= pages
    tutorials = {p for p in pages if p.startswith("tutorials/0")}
    assert len(tutorials) == 5, tutorials
    api = (out / "api.html").read_text()
    assert "load_query_data" in (out / "generated" / "scmamba.SCMAMBA.html").read_text() and "SCMAMBA" in api
