"""Loaders of the larger real data sets: download into a cache folder, SHA-256 check, cache hits, clear errors.

There is no internet here, so the "download" comes from a ``file://`` mirror holding the shared data files, which
are the very files the registry describes (same names, same SHA-256).
"""

from __future__ import annotations

import shutil

import pytest
from conftest import shared_file

from scmamba import datasets
from scmamba.datasets._registry import REGISTRY
from scmamba.datasets._remote import DATA_DIR_ENV, DATA_URL_ENV, _fetch

ABSEQ = REGISTRY["abseq_bonemarrow_triana2021"]


@pytest.fixture
def mirror(monkeypatch):
    """``SCMAMBA_DATA_URL`` pointing at the shared data folder, as a ``file://`` URL."""
    folder = shared_file(ABSEQ.file).parent
    monkeypatch.setenv(DATA_URL_ENV, folder.as_uri())
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    return folder


def test_registry_hashes_are_those_of_the_shared_files():
    import pooch

    for entry in REGISTRY.values():
        assert pooch.file_hash(str(shared_file(entry.file))) == entry.sha256, entry.file


def test_download_into_the_cache_then_read_from_it(mirror, tmp_path, monkeypatch):
    mdata = datasets.abseq_bone_marrow(data_dir=tmp_path)
    cached = tmp_path / ABSEQ.file
    assert cached.read_bytes() == (mirror / ABSEQ.file).read_bytes()
    assert mdata.shape == (9663, 519) and set(mdata.mod) == {"rna", "prot"}
    assert mdata["rna"].X.dtype.kind == "i" and {"cell_type", "batch"} <= set(mdata.obs.columns)
    assert sorted(mdata.obs["batch"].unique()) == ["Aged1", "Aged2", "Aged3", "BM1", "BM2", "BM3"]
    # a second call reads the cached copy: no mirror is needed any more
    monkeypatch.setenv(DATA_URL_ENV, (tmp_path / "nowhere").as_uri())
    assert _fetch("abseq_bonemarrow_triana2021", tmp_path) == cached


def test_cache_folder_from_the_environment_and_the_argument(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert _fetch("abseq_bonemarrow_triana2021") == tmp_path / "env" / ABSEQ.file
    assert _fetch("abseq_bonemarrow_triana2021", tmp_path / "arg") == tmp_path / "arg" / ABSEQ.file  # argument wins


def test_altered_cached_file_is_downloaded_again(mirror, tmp_path):
    cached = tmp_path / ABSEQ.file
    cached.write_bytes(b"not the data")
    assert _fetch("abseq_bonemarrow_triana2021", tmp_path) == cached
    assert cached.read_bytes() == (mirror / ABSEQ.file).read_bytes()


def test_mirror_with_a_different_file_fails_the_checksum(tmp_path, monkeypatch):
    bad_mirror = tmp_path / "mirror"
    bad_mirror.mkdir()
    (bad_mirror / ABSEQ.file).write_bytes(b"something else")
    monkeypatch.setenv(DATA_URL_ENV, bad_mirror.as_uri())
    with pytest.raises(ValueError, match="SHA256 hash of downloaded file"):
        _fetch("abseq_bonemarrow_triana2021", tmp_path / "cache")
    assert not (tmp_path / "cache" / ABSEQ.file).exists()


def test_without_a_mirror_a_correct_cached_copy_is_used_and_otherwise_the_error_says_how(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_URL_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=rf"{DATA_URL_ENV}.*SHA-256 {ABSEQ.sha256}.*EXTruvIIInb"):
        _fetch("abseq_bonemarrow_triana2021", tmp_path)
    (tmp_path / ABSEQ.file).write_bytes(b"not the data")
    with pytest.raises(FileNotFoundError, match="has another SHA-256"):
        _fetch("abseq_bonemarrow_triana2021", tmp_path)
    shutil.copyfile(shared_file(ABSEQ.file), tmp_path / ABSEQ.file)  # e.g. copied by hand from a colleague
    assert _fetch("abseq_bonemarrow_triana2021", tmp_path) == tmp_path / ABSEQ.file


def test_snareseq_loader(mirror, tmp_path):
    mdata = datasets.snareseq_mouse_cortex(data_dir=tmp_path)
    assert mdata["rna"].shape == (10309, 1677) and mdata["atac"].shape == (10309, 24744)
    assert mdata.obs["batch"].nunique() == 12
