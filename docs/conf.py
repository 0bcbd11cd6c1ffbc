"""Sphinx configuration (myst-nb, autosummary, numpy docstrings via napoleon)."""

from importlib.metadata import version as _version

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
autosummary_generate = True
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
typehints_defaults = "braces"
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "dollarmath"]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "sphinx_book_theme"
html_title = "scmamba"
