"""Loader of the paired RNA+ATAC demo subset shipped inside the package."""

from __future__ import annotations

from importlib.resources import as_file, files

import mudata as md
from mudata import MuData


def snareseq_cortex_demo() -> MuData:
    """2,500 adult mouse cortex nuclei with paired RNA and chromatin accessibility (SNARE-seq).

    Real data of Chen, Lake & Zhang (Nat Biotechnol 2019, GEO GSE126074), in the feature set curated by scMoMaT:
    all 1,677 genes (``rna``, with mm10 ``chrom``/``start``/``end`` in ``var``) and all 24,744 regions (``atac``,
    named ``chr:start-end``), raw integer counts, 2,500 random cells of 10,309. ``obs`` holds ``cell_type`` (23
    original clusters), ``cell_type_coarse`` and ``batch`` (12 SNARE-seq libraries). Provenance in
    ``uns['source']``.

    Returns
    -------
    mudata.MuData
        A new MuData (a fresh copy on every call).
    """
    resource = files("scmamba.datasets") / "_data" / "snareseq_cortex_demo.h5mu"
    with as_file(resource) as path:
        return md.read_h5mu(path)
