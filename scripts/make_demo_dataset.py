"""Build the demo subset shipped in the package from the SNARE-seq mouse cortex data (Chen et al. 2019).

Usage: python scripts/make_demo_dataset.py [snareseq_mouse_cortex_chen2019.h5mu]
(without a file, the full set comes from scmamba.datasets.snareseq_mouse_cortex(), downloaded and converted)

Takes 2,500 random cells (seed 0), all 1,677 genes and all 24,744 peaks, raw integer counts unchanged, and
writes src/scmamba/datasets/_data/snareseq_cortex_demo.h5mu (gzip).
"""

import sys
from pathlib import Path

import mudata as md
import numpy as np

md.set_options(pull_on_update=False)
N_CELLS = 2500

if len(sys.argv) > 1:
    mdata = md.read_h5mu(Path(sys.argv[1]))
else:
    from scmamba.datasets import snareseq_mouse_cortex

    mdata = snareseq_mouse_cortex()
rng = np.random.default_rng(0)
keep = np.sort(rng.choice(mdata.n_obs, N_CELLS, replace=False))
sub = mdata[keep].copy()
sub.uns["source"] = (
    "2,500 random cells (seed 0) of the SNARE-seq adult mouse cortex data of Chen, Lake & Zhang, Nat Biotechnol "
    "37:1452 (2019), GEO GSE126074, as curated by scMoMaT (PeterZZQ/scMoMaT, MIT): 1,677 genes, 24,744 regions, "
    "raw counts. Built by scripts/make_demo_dataset.py."
)
out = Path(__file__).resolve().parents[1] / "src" / "scmamba" / "datasets" / "_data" / "snareseq_cortex_demo.h5mu"
sub.write_h5mu(out, compression="gzip")
print(out, out.stat().st_size / 1e6, "MB", sub)
