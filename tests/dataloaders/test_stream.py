"""The streaming data path: every cell once per epoch, new orders, the in-memory path's minibatches and embeddings."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
from conftest import TINY

from scmamba import SCMAMBA
from scmamba.dataloaders import (
    StreamingDataModule,
    StreamingDataset,
    epoch_buffers,
    read_rows_contiguous,
    to_chunked,
)

MODS = {"rna_layer": "rna", "atac_layer": "atac"}
N = 300


def _cells(plan):
    return np.concatenate([b for buf in plan for b in buf])


def test_every_cell_once_per_epoch_in_a_new_order():
    cells = np.sort(np.random.default_rng(0).choice(5000, 1000, replace=False))
    kw = {"batch_size": 32, "shuffle": True, "chunk_size": 16, "buffer_cells": 128}
    e0, e1 = epoch_buffers(cells, epoch=0, **kw), epoch_buffers(cells, epoch=1, **kw)
    for plan in (e0, e1):
        got = _cells(plan)
        assert len(got) == len(cells) and np.array_equal(np.sort(got), cells)  # once each
        assert all(len(b) == 32 for buf in plan for b in buf[:-1] if buf is not plan[-1])
    assert not np.array_equal(_cells(e0), _cells(e1))
    # chunks are read whole: a buffer holds a few runs of consecutive cells, not scattered rows
    first = np.sort(np.concatenate(e0[0]))
    assert (np.diff(np.searchsorted(cells, first)) == 1).mean() > 0.8
    # drop_last: full minibatches only, fewer than batch_size cells left out
    dropped = epoch_buffers(cells, epoch=0, drop_last=True, **kw)
    assert all(len(b) == 32 for buf in dropped for b in buf) and len(cells) - len(_cells(dropped)) < 32
    # no shuffle: the given order (embedding rows follow indices)
    order = np.random.default_rng(1).permutation(cells)
    assert np.array_equal(_cells(epoch_buffers(order, batch_size=50, shuffle=False)), order)


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_shares_are_disjoint_complete_and_equal(world):
    cells = np.arange(1001)
    kw = {"batch_size": 25, "shuffle": True, "chunk_size": 16, "buffer_cells": 100, "epoch": 4, "world_size": world}
    plans = [epoch_buffers(cells, rank=r, **kw) for r in range(world)]
    shares = [_cells(p) for p in plans]
    union = np.concatenate(shares)
    assert len(np.unique(union)) == len(union)  # disjoint
    assert len(union) >= len(cells) - world * 25  # complete, but for the tails of full minibatches
    assert len({sum(len(buf) for buf in p) for p in plans}) == 1  # the same number of steps on every process


@pytest.fixture(scope="module")
def files(demo_mdata, tmp_path_factory):
    """300 demo cells: a mosaic (a third RNA-only, a third ATAC-only), ATAC rows in another order, gzip'd, and
    the same cells rewritten by ``to_chunked``."""
    tmp = tmp_path_factory.mktemp("stream")
    m = demo_mdata[:N].copy()
    group = np.random.default_rng(0).permutation(np.arange(N) % 3)
    rna = m["rna"][group != 2].copy()
    atac = m["atac"][group != 1].copy()
    atac = atac[np.random.default_rng(1).permutation(atac.n_obs)].copy()
    mosaic = md.MuData({"rna": rna, "atac": atac})[m.obs_names].copy()
    mosaic.obs = m.obs.loc[mosaic.obs_names, ["cell_type", "batch"]].copy()
    path = tmp / "mosaic.h5mu"
    mosaic.write_h5mu(path, compression="gzip")
    chunked = to_chunked(path, tmp / "mosaic_chunked.h5mu", block_cells=64)
    return path, chunked


def _setup(mdata):
    SCMAMBA.setup_mudata(mdata, batch_key="batch", modalities=MODS)
    return SCMAMBA._get_most_recent_anndata_manager(mdata, required=True)


def _dense(t):
    return t.to_dense().numpy() if t.layout != __import__("torch").strided else t.numpy()


@pytest.mark.parametrize("which", ["source", "chunked"])
def test_stream_minibatches_equal_the_in_memory_paths(files, which):
    path = files[0] if which == "source" else files[1]
    backed = md.read_h5mu(path, backed="r")
    memory = md.read_h5mu(files[0])
    stream = StreamingDataset(_setup(backed), batch_size=40, shuffle=True, chunk_size=8, buffer_cells=80)
    reference = _setup(memory).create_torch_dataset(load_sparse_tensor=True)
    seen = []
    for batch, cells in zip(stream, [b for buf in stream.plan(0) for b in buf], strict=True):
        expected = reference[cells]
        assert list(batch) == list(expected)  # same keys, same order (counts, batch codes, observed masks)
        for key, value in expected.items():
            np.testing.assert_array_equal(_dense(batch[key]), np.asarray(_dense(value) if hasattr(value, "layout")
                                                                       else value))  # fmt: skip
        seen.append(cells)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(N))
    assert "observed_rna" in batch and not batch["observed_rna"].all()  # a mosaic: the masks travel


def test_to_chunked_keeps_counts_in_obs_order(files):
    src, dst = md.read_h5mu(files[0]), md.read_h5mu(files[1], backed="r")
    assert dst.obs_names.equals(src.obs_names)
    for mod in ("rna", "atac"):
        want = src[mod][src.obs_names.intersection(src[mod].obs_names, sort=False)]
        assert dst[mod].obs_names.equals(want.obs_names)
        X = read_rows_contiguous(dst[mod].X, np.arange(dst[mod].n_obs))
        assert (X != want.X.astype(np.float32)).nnz == 0
        assert dst.file[f"mod/{mod}/X/data"].compression is None  # one plain read per run


def test_embeddings_from_the_stream_equal_in_memory_and_go_to_disk(files, tmp_path):
    scvi.settings.seed = 0
    backed = md.read_h5mu(files[1], backed="r")
    _setup(backed)
    model = SCMAMBA(backed, **TINY)
    model.train(max_epochs=2, batch_size=50, data_source="stream", enable_progress_bar=False,
                datasplitter_kwargs={"chunk_size": 16, "buffer_cells": 100})  # fmt: skip
    assert np.isfinite(model.history["train_loss"].to_numpy(dtype=float)).all()
    memory = md.read_h5mu(files[1])
    idx = np.random.default_rng(0).permutation(N)[:170]
    z = model.get_latent_representation(indices=idx)  # backed: streamed, in the order of idx
    np.testing.assert_allclose(z, model.get_latent_representation(memory, indices=idx), atol=1e-5)
    z_rna = model.get_latent_representation(modality="rna", indices=idx)
    np.testing.assert_allclose(z_rna, model.get_latent_representation(memory, modality="rna", indices=idx), atol=1e-5)
    full = model.get_latent_representation()
    on_disk = model.get_latent_representation(out=tmp_path / "z.npy")
    np.testing.assert_allclose(np.asarray(on_disk), full, atol=1e-6)
    adata = model.get_latent_representation(out=tmp_path / "z.h5ad")
    back = ad.read_h5ad(tmp_path / "z.h5ad")
    assert back.obs_names.equals(backed.obs_names) and "cell_type" in back.obs
    np.testing.assert_allclose(back.obsm["X_scmamba"], full, atol=1e-6)
    import scanpy as sc

    from scmamba.tl import match_cells

    sc.pp.neighbors(adata, use_rep="X_scmamba", n_neighbors=5)
    assert adata.obsp["connectivities"].shape == (N, N)
    matches = match_cells(adata, back, k=3, use_rep="X_scmamba")
    assert matches is not None


def test_training_streams_in_memory_data_with_the_splitters_split(demo_mdata):
    scvi.settings.seed = 0
    m = demo_mdata[:256].copy()
    manager = _setup(m)
    model = SCMAMBA(m, **TINY)
    model.train(max_epochs=2, batch_size=64, train_size=0.75, data_source="stream", enable_progress_bar=False)
    assert len(model.train_indices) == 192 and len(model.validation_indices) == 64
    assert not set(model.train_indices) & set(model.validation_indices)
    assert np.isfinite(model.history["validation_loss"].to_numpy(dtype=float)).all()
    with pytest.raises(ValueError, match="do not apply to the streaming"):
        model.train(max_epochs=1, data_source="stream", datasplitter_kwargs={"num_workers": 2})
    # each DDP process reads its own share (placement from the trainer)
    dm = StreamingDataModule(manager, batch_size=32)
    shares = []
    for rank in range(2):
        dm.trainer = type("T", (), {"global_rank": rank, "world_size": 2, "accelerator": None})()
        loader = dm.train_dataloader()
        shares.append(np.concatenate([b for buf in loader.dataset.plan(0) for b in buf]))
        assert sum(len(b["batch"]) for b in loader) == len(shares[-1])
    assert not set(shares[0]) & set(shares[1]) and len(shares[0]) + len(shares[1]) == 256


def test_a_reader_error_reaches_the_training_loop(demo_mdata):
    m = demo_mdata[:64].copy()
    stream = StreamingDataset(_setup(m), batch_size=16)

    def broken(cells):
        raise OSError("disk gone")

    stream.read = broken
    with pytest.raises(OSError, match="disk gone"):
        next(iter(stream))
    assert isinstance(pd.Index(stream.cells), pd.Index)
