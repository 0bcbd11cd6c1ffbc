"""Real data sets too large to ship: downloaded once into a cache folder, checked against their SHA-256, read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mudata as md
from mudata import MuData

from ._registry import REGISTRY

#: Environment variable naming the cache folder (default: the platform's user cache folder, ``…/scmamba``).
DATA_DIR_ENV = "SCMAMBA_DATA_DIR"
#: Environment variable naming a mirror (base URL) for the files whose registry ``url`` is ``None``.
DATA_URL_ENV = "SCMAMBA_DATA_URL"


def _cache_dir(data_dir: str | os.PathLike | None) -> Path:
    import pooch

    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    return Path(pooch.os_cache("scmamba"))


def _copy_file_url(url: str, output_file: str, pooch: object) -> None:
    """A pooch downloader for ``file://`` URLs (a mirror on a local or network drive)."""
    shutil.copyfile(url2pathname(urlparse(url).path), output_file)


def _fetch(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of the registry file ``name`` in the cache folder, downloading it first if it is missing or altered."""
    import pooch

    entry = REGISTRY[name]
    mirror = os.environ.get(DATA_URL_ENV)
    url = entry.url or (f"{mirror.rstrip('/')}/{entry.file}" if mirror else None)
    cache = _cache_dir(data_dir)
    if url is None:
        path = cache / entry.file
        if path.exists() and pooch.file_hash(str(path)) == entry.sha256:
            return path
        state = f"{path} has another SHA-256" if path.exists() else f"{path} does not exist"
        raise FileNotFoundError(
            f"{entry.file} is not downloadable from a fixed address yet, and {state}. Set {DATA_URL_ENV} to a "
            f"mirror that holds it (e.g. {DATA_URL_ENV}=file:///path/to/folder), or put the file (SHA-256 "
            f"{entry.sha256}) in {cache} (the folder is data_dir=, else ${DATA_DIR_ENV}). Source: {entry.origin}."
        )
    downloader = _copy_file_url if urlparse(url).scheme == "file" else None
    return Path(
        pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=entry.file, path=cache, downloader=downloader)
    )


def snareseq_mouse_cortex(data_dir: str | os.PathLike | None = None) -> MuData:
    """All 10,309 nuclei of the SNARE-seq adult mouse cortex data set, paired RNA and chromatin accessibility.

    Chen, Lake & Zhang, Nat Biotechnol 37:1452 (2019), GEO GSE126074, in the feature set curated by scMoMaT: 1,677
    genes (``rna``; mm10 ``gene_id``/``chrom``/``start``/``end``/``strand`` in ``var``, 1,649 placed) and 24,744
    regions (``atac``, named ``chr:start-end``, with the ``linked_gene`` each was selected for), raw integer
    counts. ``obs``: ``cell_type`` (23 clusters of the original paper), ``cell_type_coarse`` (15 classes),
    ``batch`` (12 SNARE-seq libraries) and ``barcode``. :func:`snareseq_cortex_demo` is a 2,500-cell subset of it
    that ships with the package.

    The public source is not one file of this format: scMoMaT (GitHub ``PeterZZQ/scMoMaT``, MIT licence) publishes
    the counts as ``data/real/MOp_5batches/{GxC1,RxC1,GxR}.npz`` with ``genes.txt``, ``regions.txt`` and
    ``meta_c1.csv``. The MuData read here was converted from them: matrices transposed to cells × features (int32
    CSR), the 990 regions without a count in these cells dropped, gene coordinates added from
    :func:`scmamba.data.gene_positions` (``'GRCm38'``), ``linked_gene`` from ``GxR.npz``, ``obs`` from
    ``meta_c1.csv``. ``uns['source']`` records this. Licences: scMoMaT's files are MIT-licensed (the notice is in
    ``scmamba/datasets/_data/README.md``); the measurements are GEO data, which NCBI distributes without
    restriction; cite Chen et al. 2019.

    Parameters
    ----------
    data_dir
        Cache folder. Default: ``$SCMAMBA_DATA_DIR`` if set, else the user cache folder (``~/.cache/scmamba`` on
        Linux). The file is downloaded there once, from the mirror named by ``$SCMAMBA_DATA_URL`` while the
        converted file has no fixed public address, and its SHA-256 is checked on every call.

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``atac``, read into memory.
    """
    return md.read_h5mu(_fetch("snareseq_mouse_cortex_chen2019", data_dir))


def abseq_bone_marrow(data_dir: str | os.PathLike | None = None) -> MuData:
    """9,663 human bone-marrow cells from six donors with paired RNA and surface protein (BD Rhapsody Abseq).

    Triana et al., Nat Immunol 22:1577 (2021): a targeted panel of 422 mRNAs (``rna``; GRCh38 coordinates in
    ``var``, 421 placed) and 97 antibody-derived tags (``prot``), raw integer counts. ``obs``: ``cell_type`` (13
    broad types), ``cell_type_fine``, ``batch`` (donor: BM1–BM3 young, Aged1–Aged3 old) and ``age_group``.
    ``uns['negative_control_sets']`` holds the negative-control feature lists supplied with the data.

    The public source is not one file of this format: the 9,663-cell subset is published as an R list
    (``data/triana_data.rda`` in GitHub ``HsiaoChiLiao/EXTruvIIInb``: ``rna_raw``, ``adt_raw``, ``metadata``,
    ``nc1``–``nc3``; the full data of the paper are on figshare). The MuData read here was converted from it with R
    (``load``, ``Matrix::writeMM``, ``write.csv``) and anndata/mudata: format only, no cell or feature removed;
    R's ``HLA.A``-style gene names restored to ``HLA-A`` (``original_name`` keeps the given names). Licences: the
    terms of the authors' figshare record apply to the data (cite Triana et al. 2021); the repository the subset
    was taken from declares GPL-3 for its R package.

    Parameters
    ----------
    data_dir
        Cache folder; see :func:`snareseq_mouse_cortex`.

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``prot``, read into memory.
    """
    return md.read_h5mu(_fetch("abseq_bonemarrow_triana2021", data_dir))
