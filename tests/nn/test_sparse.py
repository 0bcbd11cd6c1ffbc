"""Non-zero minibatches and the value encoding computed on them."""

import numpy as np
import pytest
import torch
from scipy import sparse

from scmamba.nn import SparseRows, bin_relative_levels, encode_values, normalize_log1p
from scmamba.nn._sparse import stable_order


def dense_bins(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """The definition on a dense matrix: per-cell nearest-rank quantile edges of the non-zeros, searchsorted."""
    out = torch.zeros_like(x)
    q = torch.linspace(0, 1, n_bins - 1)
    for i, row in enumerate(x):
        nz = row[row > 0]
        if nz.numel() == 0:
            continue
        s = torch.sort(nz).values
        edges = s[torch.floor(q * (nz.numel() - 1)).long()]
        bins = torch.searchsorted(edges, row, right=True).clamp(1, n_bins - 1)
        out[i] = torch.where(row > 0, bins / (n_bins - 1), 0.0)
    return out


def counts(seed=0, shape=(40, 300)):
    g = torch.Generator().manual_seed(seed)
    x = torch.poisson(torch.rand(shape, generator=g) * 3) * (torch.rand(shape, generator=g) < 0.2)
    x[3] = 0  # a cell without counts
    x[5, :4] = torch.tensor([2.0, 2.0, 2.0, 7.0])  # ties
    return x


@pytest.mark.parametrize("n_bins", [2, 3, 11, 51])
def test_bins_on_nonzeros_equal_the_dense_definition(n_bins):
    for seed in range(5):
        x = counts(seed)
        got = bin_relative_levels(SparseRows.from_tensor(x), n_bins).to_dense()
        assert torch.equal(got, dense_bins(x, n_bins))


@pytest.mark.parametrize("n_keys", [1, 300, 2**16, 2**16 + 1, 2**40])
def test_stable_order_is_a_stable_sort(n_keys):
    g = torch.Generator().manual_seed(n_keys % 97)
    key = torch.randint(0, min(n_keys, 2**62), (5000,), generator=g)
    key[:50] = key[50]  # ties keep their order
    got = stable_order(key.int() if n_keys < 2**31 else key, n_keys)
    assert torch.equal(got, torch.sort(key, stable=True).indices)


@pytest.mark.parametrize("scale", [3000.0, 30000.0])
def test_bins_of_large_counts_equal_the_dense_definition(scale):
    # counts up to ~10^4 / ~10^5: too wide for a per-cell histogram of this minibatch, so the values are sorted
    # (with 16-bit keys, then without)
    x = counts(2) * scale
    assert (x.max() < 2**16) == (scale == 3000.0)
    assert torch.equal(bin_relative_levels(SparseRows.from_tensor(x), 11).to_dense(), dense_bins(x, 11))


def test_bins_depend_on_ranks_only():
    x = counts(1)
    sp = SparseRows.from_tensor(x)
    scaled = sp.with_values(torch.log1p(sp.values * 17.0))  # monotone per value
    assert torch.equal(bin_relative_levels(sp, 51).values, bin_relative_levels(scaled, 51).values)


def test_from_dense_csr_coo_and_scipy_agree():
    x = counts(2)
    forms = [
        SparseRows.from_tensor(x),
        SparseRows.from_tensor(x.to_sparse_csr()),
        SparseRows.from_tensor(x.to_sparse()),
        SparseRows.from_scipy(sparse.csr_matrix(x.numpy())),
    ]
    for sp in forms:
        assert torch.equal(sp.to_dense(), x)
        assert torch.equal(sp.rows, forms[0].rows) and torch.equal(sp.cols, forms[0].cols)
    assert torch.equal(forms[0].row_sums(), x.sum(1))
    assert torch.equal(forms[0].row_counts(), (x > 0).sum(1))


def test_permute_and_select():
    x = counts(3, (6, 10))
    sp = SparseRows.from_tensor(x)
    order = torch.randperm(10)  # new column i holds old column order[i]
    position = torch.empty_like(order).scatter_(0, order, torch.arange(10))
    assert torch.equal(sp.permute_cols(position).to_dense(), x[:, order])
    keep = sp.values > 1
    assert torch.equal(sp.select(keep).to_dense(), x * (x > 1))


def test_encodings():
    x = counts(4)
    sp = SparseRows.from_tensor(x)
    atac = encode_values(sp, "atac", 51).to_dense()
    assert torch.equal(atac, (x > 0).float())
    lognorm = normalize_log1p(sp).to_dense()
    total = x.sum(1, keepdim=True)
    expected = torch.where(total > 0, torch.log1p(x / total.clamp_min(1e-12) * 1e4), 0.0)
    assert torch.allclose(lognorm, expected)
    assert torch.allclose(encode_values(sp, "protein", None).to_dense(), torch.log1p(x))
    assert np.isclose(float(encode_values(sp, "rna", 51).values.max()), 1.0)


@pytest.mark.parametrize("modality", ["rna", "atac", "protein"])
@pytest.mark.parametrize("n_bins", [None, 51])
def test_dense_input_is_encoded_like_its_nonzeros(modality, n_bins):
    x = counts(2)
    dense = encode_values(x, modality, n_bins)
    assert isinstance(dense, torch.Tensor) and dense.shape == x.shape
    assert torch.equal(dense, encode_values(SparseRows.from_tensor(x), modality, n_bins).to_dense())
    assert torch.equal(dense[3], torch.zeros(x.shape[1]))  # a cell without counts stays zero
