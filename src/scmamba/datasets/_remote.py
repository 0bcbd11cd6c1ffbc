"""Real data sets too large to ship: public files downloaded, checked and converted once, then read from a cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mudata as md
from mudata import MuData

from . import _convert
from ._registry import ABSEQ, SNARESEQ, DataSet, UpstreamFile

#: Environment variable naming the cache folder (default: the platform's user cache folder, ``…/scmamba``).
DATA_DIR_ENV = "SCMAMBA_DATA_DIR"
#: Environment variable naming a mirror of the public files (a base URL, ``https://…`` or ``file://…``, or a folder).
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


def _download(source: UpstreamFile, cache: Path, mirror: str | None) -> Path:
    """Local path of ``source`` in ``cache/upstream/``, downloaded first if it is missing or altered."""
    import pooch

    if mirror and not urlparse(mirror).scheme:  # a plain folder path: the same as its file:// URL
        mirror = Path(mirror).expanduser().resolve().as_uri()
    url = f"{mirror.rstrip('/')}/{source.mirror_path}" if mirror else source.url
    downloader = _copy_file_url if urlparse(url).scheme == "file" else None
    folder = cache / "upstream" / source.repo.replace("/", "_")
    path = pooch.retrieve(
        url, known_hash=f"sha256:{source.sha256}", fname=source.name, path=folder, downloader=downloader
    )
    return Path(path)


def _load(dataset: DataSet, convert, data_dir: str | os.PathLike | None, mirror: str | None) -> MuData:
    """The converted MuData of ``dataset`` from the cache folder, downloading and converting it first if needed."""
    cache = _cache_dir(data_dir)
    target = cache / dataset.file
    if not target.exists():
        mirror = mirror if mirror is not None else (os.environ.get(DATA_URL_ENV) or None)
        files = {source.name: _download(source, cache, mirror) for source in dataset.sources}
        mdata = convert(files)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            mdata.write_h5mu(partial)
            os.replace(partial, target)  # a cached file is always a whole one
        finally:
            partial.unlink(missing_ok=True)
    return md.read_h5mu(target)


def snareseq_mouse_cortex(data_dir: str | os.PathLike | None = None, mirror: str | None = None) -> MuData:
    """All 10,309 nuclei of the SNARE-seq adult mouse cortex data set, paired RNA and chromatin accessibility.

    Chen, Lake & Zhang, Nat Biotechnol 37:1452 (2019), GEO GSE126074, in the feature set curated by scMoMaT: 1,677
    genes (``rna``; mm10 ``gene_id``/``chrom``/``start``/``end``/``strand`` in ``var``, 1,649 placed) and 24,744
    regions (``atac``, named ``chr:start-end``, with the ``linked_gene`` each was selected for), raw integer
    counts (int32 CSR). ``obs``: ``cell_type`` (23 clusters of the original paper), ``cell_type_coarse`` (15
    classes), ``batch`` (12 SNARE-seq libraries) and ``barcode``. :func:`snareseq_cortex_demo` is a 2,500-cell
    subset of it that ships with the package.

    Downloaded from GitHub ``PeterZZQ/scMoMaT`` at commit ``dbd954d``, folder ``data/real/MOp_5batches`` (batch 1
    of scMoMaT's benchmark): ``GxC1.npz`` and ``RxC1.npz`` (genes × cells and regions × cells counts), ``GxR.npz``
    (the gene each region is linked to), ``genes.txt``, ``regions.txt`` and ``meta_c1.csv`` (6.7 MB in all).
    Converted here: matrices transposed to cells × features, the 990 regions without a count in these cells dropped
    (they were defined over other batches), gene coordinates added from :func:`scmamba.data.gene_positions`
    (``'GRCm38'``, first row per symbol), ``obs`` from ``meta_c1.csv`` (``Ident`` → ``cell_type``,
    ``cluster (remapped)`` → ``cell_type_coarse``, ``Batch`` → ``batch``, ``Barcode`` → ``barcode``).

    Licence: scMoMaT's files are under the MIT licence (copyright 2021 ha0ransun; the notice is in
    ``scmamba/datasets/_data/README.md``). The measurements are GEO data, which NCBI distributes without
    restriction; cite Chen et al. 2019 when you use them.

    Parameters
    ----------
    data_dir
        Cache folder. Default: ``$SCMAMBA_DATA_DIR`` if set, else the user cache folder (``~/.cache/scmamba`` on
        Linux). The public files are downloaded into its ``upstream/`` folder, checked against their SHA-256, and
        converted once into ``snareseq_mouse_cortex_chen2019.h5mu`` there; later calls read that file.
    mirror
        Base URL to download the public files from instead of GitHub (``https://…``, ``file://…`` or a folder
        path), holding one folder per repository named ``<owner>_<name>`` with the files in it, e.g.
        ``<mirror>/PeterZZQ_scMoMaT/GxC1.npz``. Default: ``$SCMAMBA_DATA_URL`` if set. The SHA-256 checks apply to a
        mirror too.

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``atac``, read into memory.
    """
    return _load(SNARESEQ, _convert.snareseq, data_dir, mirror)


def abseq_bone_marrow(data_dir: str | os.PathLike | None = None, mirror: str | None = None) -> MuData:
    """9,663 human bone-marrow cells from six donors with paired RNA and surface protein (BD Rhapsody Abseq).

    Triana et al., Nat Immunol 22:1577 (2021): a targeted panel of 422 mRNAs (``rna``; GRCh38 coordinates in
    ``var``, 421 placed) and 97 antibody-derived tags (``prot``), raw integer counts (int32 CSR). ``obs``:
    ``cell_type`` (13 broad types), ``cell_type_fine``, ``batch`` (donor: BM1–BM3 young, Aged1–Aged3 old) and
    ``age_group``. ``uns['negative_control_sets']`` holds the negative-control feature lists supplied with the data.

    Downloaded from GitHub ``HsiaoChiLiao/EXTruvIIInb`` at commit ``eaeb835``: ``data/triana_data.rda`` (2.3 MB),
    an R list (``rna_raw``, ``adt_raw``, ``metadata``, ``nc1``–``nc3``) read with the ``rdata`` package (no R
    needed). Converted here: format only, no cell or feature removed; the ``mod1_``/``mod2_`` prefixes dropped and
    R's ``HLA.A``-style gene names restored to ``HLA-A`` (``original_name`` keeps the given names); coordinates from
    :func:`scmamba.data.gene_positions` (``'GRCh38'``), eight outdated symbols looked up under their current names
    (``lookup_symbol``).

    Licence: the repository the file comes from declares GPL-3 for its R package (its DESCRIPTION; its LICENSE file
    is the AGPL-3). The measurements are those of Triana et al. 2021, whose full data are on figshare under the
    terms of that record; cite Triana et al. 2021 when you use them.

    Parameters
    ----------
    data_dir
        Cache folder. Default: ``$SCMAMBA_DATA_DIR`` if set, else the user cache folder (``~/.cache/scmamba`` on
        Linux). The public files are downloaded into its ``upstream/`` folder, checked against their SHA-256, and
        converted once into ``abseq_bonemarrow_triana2021.h5mu`` there; later calls read that file.
    mirror
        Base URL to download the public files from instead of GitHub (``https://…``, ``file://…`` or a folder
        path), holding one folder per repository named ``<owner>_<name>`` with the files in it, e.g.
        ``<mirror>/HsiaoChiLiao_EXTruvIIInb/triana_data.rda``. Default: ``$SCMAMBA_DATA_URL`` if set. The
        SHA-256 checks apply to a mirror too.

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``prot``, read into memory.
    """
    return _load(ABSEQ, lambda files: _convert.abseq(files["triana_data.rda"]), data_dir, mirror)
