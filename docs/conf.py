"""Sphinx configuration (myst-nb, autosummary, numpy docstrings via napoleon).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

Tutorials: the pages are the notebooks ``tutorials/NN_name.ipynb`` with the outputs stored in them (written by
``python tutorials/execute.py``); the docs never run code. A tutorial without a stored notebook is rendered from its
script (``tutorials/NN_name.py``, jupytext percent format), code and text without outputs. Either file is copied into
``docs/tutorials/`` at the start of each build (the copies are not tracked). ``SCMAMBA_TUTORIALS_DIR`` takes them
from another folder.

Results: ``results.md`` is written at the start of each build from the result files in ``benchmarks/results/`` by
``benchmarks/report.py`` (not tracked; ``python -m benchmarks.report`` prints the same page).

``SCMAMBA_DOCS_INTERSPHINX=1`` links to the Python, scvi-tools, AnnData and MuData docs; it needs internet access to
fetch their inventories, so it is off by default (an unreachable inventory is a build warning).
"""

import os
import shutil
import sys
import warnings
from importlib.metadata import version as _version
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the repository root, for benchmarks.report


def _collect_tutorials(source: Path, dest: Path) -> None:
    """Copy each tutorial's stored notebook, or its script where it has none, into the docs source folder."""
    for stale in dest.glob("[0-9][0-9]_*"):
        stale.unlink()
    for script in sorted(source.glob("[0-9][0-9]_*.py")):
        notebook = script.with_suffix(".ipynb")
        chosen = notebook if notebook.exists() else script
        shutil.copyfile(chosen, dest / chosen.name)


_collect_tutorials(Path(os.environ.get("SCMAMBA_TUTORIALS_DIR", DOCS.parent / "tutorials")), DOCS / "tutorials")

from benchmarks.report import page as _results_page  # noqa: E402 (needs the repository root on sys.path)

(DOCS / "results.md").write_text(_results_page())

project = "scmamba"
author = "scmamba developers"
release = version = _version("scmamba")
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
]
templates_path = ["_templates"]

# Sources: Markdown/reST pages and the tutorials (stored notebooks, or scripts read as notebooks). The ".py" source
# suffix (added by ``nb_custom_formats``) must not pick up conf.py or any other Python file.
include_patterns = ["**.md", "**.rst", "**.ipynb", "tutorials/*.py"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# API reference: autosummary stubs from _templates/autosummary; a class page documents the members the class
# defines or overrides, not the ones inherited unchanged from scvi-tools / Lightning / PyTorch.
autosummary_generate = True
# An override without a docstring of its own (e.g. a ``forward`` or a Lightning hook) must not show the base
# class's docstring: those are written for other projects' docs and their cross-references do not resolve here.
autodoc_inherit_docstrings = False
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
typehints_defaults = "braces"

# Tutorials (myst-nb): stored outputs are rendered, nothing is executed. Scripts are read with jupytext.reads plus
# a default Python 3 kernelspec (see _ext/jupytext_reader.py).
nb_custom_formats = {".py": ["jupytext_reader.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "dollarmath"]

intersphinx_mapping = {}
if os.environ.get("SCMAMBA_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
        "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
        "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
    }

html_theme = "sphinx_book_theme"
html_title = "scmamba"

# sphinx-autodoc-typehints calls a Sphinx API deprecated in Sphinx 9 (a Python warning, not a build warning).
warnings.filterwarnings("ignore", message=r".*_RstSnippetParser\.set_application' is deprecated")
