"""Run the README's "In a notebook" code block as a user would, on the SNARE-seq subset shipped with the package.

Usage: python .ci/readme_notebook.py [--epochs N]

The block reads ``multiome.h5mu`` and embeds ``adata_rna_only``; this script writes the first from
``scmamba.datasets.snareseq_cortex_demo()`` into a temporary folder, defines the second (the RNA layer of 200 of its
cells), and runs the block there unchanged except, with ``--epochs``, for its ``max_epochs``. It fails if the block
is gone from the README or raises. CI runs it in an environment with the package alone (no extras).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def notebook_block(readme: str) -> str:
    """The first ```python block after the "## In a notebook" heading."""
    section = readme.split("\n## In a notebook\n", 1)
    if len(section) != 2:
        raise SystemExit("README.md has no '## In a notebook' section")
    match = re.search(r"```python\n(.*?)```", section[1], flags=re.S)
    if match is None:
        raise SystemExit("README.md's '## In a notebook' section has no python block")
    return match.group(1)


def main() -> None:
    """Write the data, run the block, check what it leaves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="max_epochs instead of the README's")
    args = parser.parse_args()
    code = notebook_block(README.read_text())
    if args.epochs is not None:
        code, n = re.subn(r"max_epochs=\d+", f"max_epochs={args.epochs}", code)
        if n == 0:
            raise SystemExit("the README block has no max_epochs=… to change")

    import scmamba

    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        demo = scmamba.datasets.snareseq_cortex_demo()
        demo.write_h5mu("multiome.h5mu")
        namespace = {"adata_rna_only": demo["rna"][:200].copy(), "__name__": "__main__"}
        exec(compile(code, "README.md (In a notebook)", "exec"), namespace)
        mdata = namespace["mdata"]
        for key in ("X_scmamba", "X_umap"):
            assert key in mdata.obsm, key
        assert mdata.obs["leiden"].nunique() > 1
        print(f"README notebook block ran: {mdata.n_obs} cells, {mdata.obs['leiden'].nunique()} Leiden clusters")


if __name__ == "__main__":
    main()
