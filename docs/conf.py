"""Sphinx configuration (myst-nb, autosummary, numpy docstrings via napoleon).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

Environment switches:

* ``SCMAMBA_DOCS_EXECUTE=1`` executes the tutorials (``docs/tutorials/*.py``, jupytext percent scripts) and caches
  the results under ``docs/_build/.jupyter_cache``; by default they are rendered without running them.
* ``SCMAMBA_DOCS_INTERSPHINX=1`` links to the Python, scvi-tools, AnnData and MuData docs; it needs internet access
  to fetch their inventories, so it is off by default (an unreachable inventory is a build warning).
"""

import os
import sys
import warnings
from importlib.metadata import version as _version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

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

# Sources: Markdown/reST pages, plus the tutorials, which are jupytext percent scripts rendered as notebooks. The
# ".py" source suffix (added by ``nb_custom_formats``) must not pick up conf.py or any other Python file.
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

# Tutorials (myst-nb): jupytext.reads plus a default Python 3 kernelspec (see _ext/jupytext_reader.py).
nb_custom_formats = {".py": ["jupytext_reader.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "cache" if os.environ.get("SCMAMBA_DOCS_EXECUTE") == "1" else "off"
nb_execution_timeout = 3600
nb_execution_raise_on_error = True
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
