"""Loaders of the larger real data sets: download the public files, check them, convert them, cache the result.

There is no internet here, so the "download" comes from a ``file://`` mirror of ``../shared/data/upstream/``, which
holds byte-identical copies of the public files (one folder per repository, ``<owner>_<name>``). The converted
MuData must equal the files in ``../shared/data/`` that the tutorials and benchmarks were run on.
"""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pooch
import pytest
from conftest import shared_file

from scmamba import datasets
from scmamba.datasets import _remote
from scmamba.datasets._registry import ABSEQ, SNARESEQ
from scmamba.datasets._remote import DATA_DIR_ENV, DATA_URL_ENV


@pytest.fixture(scope="module")
def upstream():
    """The shared folder of upstream files and its ``file://`` URL."""
    folder = shared_file("upstream")
    return folder, folder.as_uri()


@pytest.fixture(scope="module")
def converted(upstream, tmp_path_factory):
    """Each loader run once from the mirror into an empty cache folder: ``{file: (cache folder, MuData)}``."""
    out = {}
    for loader, dataset in ((datasets.snareseq_mouse_cortex, SNARESEQ), (datasets.abseq_bone_marrow, ABSEQ)):
        cache = tmp_path_factory.mktemp("cache")
        out[dataset.file] = cache, loader(data_dir=cache, mirror=upstream[1])
    return out


def assert_mudata_equal(got: md.MuData, expected: md.MuData) -> None:
    assert list(got.mod) == list(expected.mod)
    pd.testing.assert_frame_equal(got.obs, expected.obs)
    for name, adata in expected.mod.items():
        mine = got[name]
        pd.testing.assert_frame_equal(mine.obs, adata.obs, obj=f"{name}.obs")
        pd.testing.assert_frame_equal(mine.var, adata.var, obj=f"{name}.var")
        assert mine.X.dtype == adata.X.dtype and mine.X.format == adata.X.format, name
        assert mine.X.shape == adata.X.shape and (mine.X != adata.X).nnz == 0, name
    assert set(got.uns) == set(expected.uns) and got.uns["source"] == expected.uns["source"]


def test_registry_matches_the_upstream_files(upstream):
    for dataset in (SNARESEQ, ABSEQ):
        for source in dataset.sources:
            assert pooch.file_hash(str(upstream[0] / source.mirror_path)) == source.sha256, source.name
            assert source.url == f"https://raw.githubusercontent.com/{source.repo}/{source.commit}/{source.path}"


@pytest.mark.parametrize("dataset", [SNARESEQ, ABSEQ], ids=["snareseq", "abseq"])
def test_converted_mudata_equals_the_shared_file(dataset, converted, upstream):
    cache, mdata = converted[dataset.file]
    assert_mudata_equal(mdata, md.read_h5mu(shared_file(dataset.file)))
    for source in dataset.sources:  # the verified downloads stay in the cache folder
        downloaded = cache / "upstream" / source.mirror_path
        assert downloaded.read_bytes() == (upstream[0] / source.mirror_path).read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == sorted([dataset.file, "upstream"])  # no partial file left


def test_abseq_negative_controls_and_counts(converted):
    mdata = converted[ABSEQ.file][1]
    expected = md.read_h5mu(shared_file(ABSEQ.file)).uns["negative_control_sets"]
    got = mdata.uns["negative_control_sets"]
    assert list(got) == ["nc1", "nc2", "nc3"] and all(np.array_equal(got[k], expected[k]) for k in expected)
    assert mdata["rna"].var.loc["HLA-A", "original_name"] == "mod1_HLA.A"
    assert mdata["rna"].var.loc["H2AFZ", "lookup_symbol"] == "H2AZ1"


def test_a_second_call_reads_the_cache_without_downloading(converted, monkeypatch):
    cache, first = converted[ABSEQ.file]

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the converted file is cached")

    monkeypatch.setattr(pooch, "retrieve", no_download)
    again = datasets.abseq_bone_marrow(data_dir=cache, mirror="file:///nowhere")
    assert_mudata_equal(again, first)


def test_cache_folder_and_mirror_from_the_environment(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_URL_ENV, upstream[1])
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    mdata = datasets.abseq_bone_marrow()
    assert mdata.shape == (9663, 519) and (tmp_path / "env" / ABSEQ.file).exists()
    datasets.abseq_bone_marrow(data_dir=tmp_path / "arg")  # the argument wins over the environment
    assert (tmp_path / "arg" / ABSEQ.file).exists()


def test_a_plain_folder_is_a_mirror_too(upstream, tmp_path, monkeypatch):
    # SCMAMBA_DATA_URL set to a folder path, as one would write it (pooch alone rejects it: "Unrecognized URL
    # protocol")
    monkeypatch.setenv(DATA_URL_ENV, str(upstream[0]))
    mdata = datasets.snareseq_mouse_cortex(data_dir=tmp_path / "env")
    assert mdata.shape[0] == 10309 and (tmp_path / "env" / SNARESEQ.file).exists()


def test_without_a_mirror_the_public_address_is_used(tmp_path, monkeypatch):
    urls = []

    def fake_retrieve(url, known_hash, fname, path, downloader):
        urls.append((url, known_hash, downloader))
        raise OSError("no network in this test")

    monkeypatch.delenv(DATA_URL_ENV, raising=False)
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    with pytest.raises(OSError, match="no network"):
        datasets.snareseq_mouse_cortex(data_dir=tmp_path)
    source = SNARESEQ.sources[0]
    assert urls == [
        (
            "https://raw.githubusercontent.com/PeterZZQ/scMoMaT/dbd954de4b1be415cdea543baf2856df0fda6992/"
            "data/real/MOp_5batches/GxC1.npz",
            f"sha256:{source.sha256}",
            None,
        )
    ]
    assert not (tmp_path / SNARESEQ.file).exists()


def test_a_mirror_with_another_file_fails_the_checksum_and_caches_nothing(tmp_path):
    mirror = tmp_path / "mirror" / "HsiaoChiLiao_EXTruvIIInb"
    mirror.mkdir(parents=True)
    (mirror / "triana_data.rda").write_bytes(b"something else")
    with pytest.raises(ValueError, match="SHA256 hash of downloaded file"):
        datasets.abseq_bone_marrow(data_dir=tmp_path / "cache", mirror=mirror.parent.as_uri())
    assert not (tmp_path / "cache" / ABSEQ.file).exists()
    assert not (tmp_path / "cache" / "upstream" / ABSEQ.sources[0].mirror_path).exists()


def test_an_altered_download_is_fetched_again(upstream, tmp_path):
    source = ABSEQ.sources[0]
    local = tmp_path / "upstream" / source.mirror_path
    local.parent.mkdir(parents=True)
    local.write_bytes(b"not the data")
    assert _remote._download(source, tmp_path, upstream[1]) == local
    assert pooch.file_hash(str(local)) == source.sha256
