"""The data files :mod:`scmamba.datasets` downloads: one row per file, with its SHA-256 and where it comes from.

``url`` is the address the file is downloaded from. ``None`` means the converted file has no stable public address
yet: the loader then downloads from the mirror named by the ``SCMAMBA_DATA_URL`` environment variable (a base URL,
``https://…``, ``doi:…`` or ``file://…``, to which the file name is appended), or uses a copy already in the cache
folder. Either way the file must have the SHA-256 below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataFile:
    """One downloadable data file."""

    #: File name in the cache folder (and on a mirror).
    file: str
    #: SHA-256 of the file's bytes.
    sha256: str
    #: Download address, or ``None`` while the file is only available from a mirror (``SCMAMBA_DATA_URL``).
    url: str | None
    #: Where the measurements come from and how this file was made from the public source.
    origin: str


REGISTRY: dict[str, DataFile] = {
    "snareseq_mouse_cortex_chen2019": DataFile(
        file="snareseq_mouse_cortex_chen2019.h5mu",
        sha256="bc14b48b851a63bcb229efd9ade0fd57ecb6198ec914d2f17c483f680cd94ee0",
        url=None,
        origin=(
            "Chen, Lake & Zhang, Nat Biotechnol 37:1452 (2019), GEO GSE126074 (AdBrainCortex), in the feature set "
            "re-quantified by scMoMaT (GitHub PeterZZQ/scMoMaT, MIT licence, data/real/MOp_5batches: GxC1.npz, "
            "RxC1.npz, GxR.npz, genes.txt, regions.txt, meta_c1.csv), converted to one MuData"
        ),
    ),
    "abseq_bonemarrow_triana2021": DataFile(
        file="abseq_bonemarrow_triana2021.h5mu",
        sha256="2f3448343a68637c0c4f2f6d04db5500fec0c5b93fb813a7e4fe2bdaefe7cd6b",
        url=None,
        origin=(
            "Triana et al., Nat Immunol 22:1577 (2021) (BD Rhapsody Abseq; the authors' data are on figshare), the "
            "9,663-cell subset of GitHub HsiaoChiLiao/EXTruvIIInb data/triana_data.rda (an R list of count "
            "matrices and metadata), converted to one MuData"
        ),
    ),
}
