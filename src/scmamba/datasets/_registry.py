"""The public files :mod:`scmamba.datasets` downloads, with their SHA-256, and the data sets converted from them.

Each file is pinned to one commit of a public GitHub repository and downloaded from
``https://raw.githubusercontent.com/<owner>/<name>/<commit>/<path>``, or from a mirror: a base URL (``https://…`` or
``file://…``) holding one folder per repository, named ``<owner>_<name>``, with the files in it (for example
``<mirror>/PeterZZQ_scMoMaT/GxC1.npz``). Either way the file must have the SHA-256 below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class UpstreamFile:
    """One public file, pinned to a commit of its repository."""

    #: GitHub repository, ``owner/name``.
    repo: str
    #: Commit the file is taken from.
    commit: str
    #: Path of the file in the repository.
    path: str
    #: SHA-256 of the file's bytes.
    sha256: str

    @property
    def name(self) -> str:
        """File name (the last part of :attr:`path`)."""
        return PurePosixPath(self.path).name

    @property
    def url(self) -> str:
        """Public address of the file at :attr:`commit`."""
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"

    @property
    def mirror_path(self) -> str:
        """Where the file is on a mirror, relative to its base URL: ``<owner>_<name>/<file name>``."""
        return f"{self.repo.replace('/', '_')}/{self.name}"


@dataclass(frozen=True)
class DataSet:
    """A MuData converted from public files."""

    #: File name of the converted MuData in the cache folder.
    file: str
    #: The public files it is converted from.
    sources: tuple[UpstreamFile, ...]


_SCMOMAT = ("PeterZZQ/scMoMaT", "dbd954de4b1be415cdea543baf2856df0fda6992", "data/real/MOp_5batches")

SNARESEQ = DataSet(
    file="snareseq_mouse_cortex_chen2019.h5mu",
    sources=tuple(
        UpstreamFile(_SCMOMAT[0], _SCMOMAT[1], f"{_SCMOMAT[2]}/{name}", sha256)
        for name, sha256 in (
            ("GxC1.npz", "44e48e6243954feafe0541f33b6b116093ca1ed4a25fc2f3ca146d89d1ab1bab"),
            ("RxC1.npz", "59d6f46dc4e908194bfc859b7773bc666d96ab74d9386b0a8f92d6b29dfcacf7"),
            ("GxR.npz", "a08249c98fb40a18c8271c9653bbd9540c23464135bf1b02f37a1243d472489f"),
            ("genes.txt", "9d722d1d281f5ff152dc8a1fb257fec883b8aa28ea3f4f79783d0595dd8b4833"),
            ("regions.txt", "d77319b1ad8a51af2c97ffa5d23d5458e95356b1926e9ae4e0ab821cc7e492a3"),
            ("meta_c1.csv", "05ea13be8042f66ee51516ccf9fd28ca43972498a69748a9e89b5b1ca280b037"),
        )
    ),
)

ABSEQ = DataSet(
    file="abseq_bonemarrow_triana2021.h5mu",
    sources=(
        UpstreamFile(
            "HsiaoChiLiao/EXTruvIIInb",
            "eaeb835ce2420fd58e97a7019769c3e9cf898894",
            "data/triana_data.rda",
            "cf7f34f2cec98cdde536265d2ad49dc43e794bb14266d1fdd8b3ca41c66c0a37",
        ),
    ),
)
