"""Execute the tutorials and store each, with its outputs, as a notebook beside its script.

Usage (from the repository root)::

    python tutorials/execute.py                  # every tutorial -> tutorials/NN_name.ipynb
    python tutorials/execute.py 02 05            # the tutorials whose file names start with 02 or 05
    python tutorials/execute.py --quick --out /tmp/nb 01   # quick mode (few cells, 2 epochs): checks the machinery

The scripts (``tutorials/NN_name.py``, jupytext percent format) are the source; the notebooks are what the docs
render (``docs/conf.py`` never runs code). Each script runs top to bottom in a fresh Python 3 kernel of this
Python, in a temporary working folder (files a tutorial saves do not land in the checkout), with progress bars off
(``TQDM_DISABLE=1``) and the dependencies' deprecation warnings off, so that the stored outputs hold results, not
bars and notices. The data sets come from :mod:`scmamba.datasets` (cache folder ``$SCMAMBA_DATA_DIR``, mirror
``$SCMAMBA_DATA_URL``). A cell that fails stops the run and no notebook is written for that tutorial.

Commit the notebooks after changing a tutorial or the model; ``tests/docs/test_tutorials.py`` checks that each
stored notebook has the code of its script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def tutorial_scripts(prefixes: list[str] | None = None) -> list[Path]:
    """The tutorial scripts (``NN_name.py``), all or those whose names start with one of ``prefixes``."""
    scripts = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
    if prefixes:
        scripts = [s for s in scripts if any(s.name.startswith(p) for p in prefixes)]
    return scripts


def execute(script: Path, out_dir: Path, *, timeout: int) -> Path:
    """Run ``script`` as a notebook in a fresh kernel and write ``out_dir/<name>.ipynb`` with the outputs."""
    notebook = jupytext.read(script, fmt="py:percent")
    notebook.metadata["kernelspec"] = nbformat.from_dict(KERNELSPEC)
    with tempfile.TemporaryDirectory(prefix=f"scmamba-{script.stem}-") as workdir:
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name=KERNELSPEC["name"],
            resources={"metadata": {"path": workdir}},
            record_timing=False,
        )
        client.execute()
    out = out_dir / f"{script.stem}.ipynb"
    nbformat.write(notebook, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefixes", nargs="*", help="run only the tutorials whose file names start with these")
    parser.add_argument("--out", type=Path, default=TUTORIALS, help="folder for the notebooks (default: tutorials/)")
    parser.add_argument("--quick", action="store_true", help="SCMAMBA_TUTORIAL_QUICK=1: few cells, 2 epochs")
    parser.add_argument("--timeout", type=int, default=4 * 3600, help="seconds allowed per cell (default: 4 h)")
    args = parser.parse_args(argv)
    scripts = tutorial_scripts(args.prefixes)
    if not scripts:
        parser.error(f"no tutorial starts with {args.prefixes}")
    os.environ["TQDM_DISABLE"] = "1"  # the kernel inherits this environment
    # Deprecation notices of the dependencies' APIs (and tqdm's missing-widgets notice) are about those packages,
    # not about the tutorial; scmamba's own warnings (UserWarning) still show.
    os.environ["PYTHONWARNINGS"] = "ignore::FutureWarning,ignore::DeprecationWarning,ignore:IProgress not found"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures go into the outputs
    if args.quick:
        os.environ["SCMAMBA_TUTORIAL_QUICK"] = "1"
    args.out.mkdir(parents=True, exist_ok=True)
    for script in scripts:
        start = time.perf_counter()
        out = execute(script, args.out, timeout=args.timeout)
        print(f"{script.name} -> {out} ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
