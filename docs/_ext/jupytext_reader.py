"""Read tutorial scripts (jupytext percent format) as notebooks for myst-nb.

The scripts carry no notebook header, so :func:`jupytext.reads` returns a notebook without ``kernelspec`` or
``language_info``. myst-nb needs them to pick a syntax highlighter for the code cells (otherwise it warns once per
cell), so they default to Python 3 here.
"""

import jupytext
import nbformat

_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
_LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}


def reads(text: str, fmt: str = "py:percent") -> nbformat.NotebookNode:
    """Parse ``text`` (a script in jupytext format ``fmt``) into a notebook with a Python 3 kernel."""
    notebook = jupytext.reads(text, fmt=fmt)
    notebook.metadata.setdefault("kernelspec", nbformat.from_dict(_KERNELSPEC))
    notebook.metadata.setdefault("language_info", nbformat.from_dict(_LANGUAGE_INFO))
    return notebook
