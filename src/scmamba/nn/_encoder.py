"""Per-modality encoder: patch tokens of genome-ordered features -> Mamba2/MLP blocks -> pooled head -> embedding."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._mamba2 import Mamba2
from ._sparse import SparseRows, stable_order

__all__ = ["GatedMLP", "MambaBlock", "MambaEncoder", "PatchEmbedding"]

Projection = Literal["per_region", "shared"]


class PatchEmbedding(nn.Module):
    """Cut a cell's feature vector into patches (tokens), project them and add learnable positions.

    Parameters
    ----------
    n_features
        Length ``L`` of the (genome-ordered) feature vector.
    patch_size
        Features per patch ``P``; the cell becomes ``ceil(L / P)`` tokens, the last one zero-padded.
    d_model
        Token width.
    dropout
        Dropout on the token embeddings.
    projection
        ``'shared'``: one ``P x D`` projection for every patch (the paper); ``'per_region'``: each genomic region
        (patch) has its own ``P x D`` projection, so a token knows which features it holds.
    bin_size
        With ``'per_region'`` only: each feature's projection is its own vector plus one vector shared by the
        ``bin_size`` consecutive features of its bin (``bin_weight``, initialised at zero), so rarely non-zero
        features (most ATAC peaks) borrow strength from their genomic neighbours. ``None``: no shared part.

    Notes
    -----
    Single-cell profiles are mostly zeros, so tokens are built from the non-zero entries only (an ``index_add`` of
    projected non-zeros into their patch): the cost grows with the number of non-zeros, not with ``L``.
    """

    def __init__(
        self,
        n_features: int,
        patch_size: int,
        d_model: int,
        *,
        dropout: float,
        projection: Projection,
        bin_size: int | None,
    ):
        super().__init__()
        if n_features < 1 or patch_size < 1:
            raise ValueError(f"n_features ({n_features}) and patch_size ({patch_size}) must be positive.")
        if projection not in ("shared", "per_region"):
            raise ValueError(f"projection must be 'shared' or 'per_region', got {projection!r}.")
        if bin_size is not None and (projection != "per_region" or bin_size < 1):
            raise ValueError(f"bin_size ({bin_size}) needs projection='per_region' and must be a positive integer.")
        self.bin_size = bin_size
        self.n_features = n_features
        self.patch_size = patch_size
        self.n_patches = math.ceil(n_features / patch_size)
        self.projection = projection
        if projection == "shared":
            self.proj = nn.Linear(patch_size, d_model)
        else:
            bound = 1 / math.sqrt(patch_size)  # nn.Linear's initialisation, per region
            self.proj_weight = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))
            self.proj_bias = nn.Parameter(torch.empty(self.n_patches, d_model).uniform_(-bound, bound))
            if bin_size is not None:
                self.bin_weight = nn.Parameter(torch.zeros(math.ceil(n_features / bin_size), d_model))
        self.pos_embedding = nn.Parameter(torch.randn(self.n_patches, d_model) * 0.02)
        self.pos_embedding._no_weight_decay = True
        self.dropout = nn.Dropout(dropout)
        self._frozen_weight: torch.Tensor | None = None

    def projection_weight(self) -> torch.Tensor:
        """The float32 ``(width, d_model)`` matrix a patch's (or with ``'per_region'`` a cell's) features map by."""
        if self._frozen_weight is not None:
            return self._frozen_weight
        if self.projection == "shared":
            return self.proj.weight.T.float()
        weight = self.proj_weight.float()
        if self.bin_size is not None:
            shared = self.bin_weight.float()[:, None].expand(-1, self.bin_size, -1)
            weight = weight + shared.reshape(-1, weight.shape[1])[: self.n_features]
        return weight

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Build the projection matrix once for the forward passes inside (embedding without gradients).

        With ``'per_region'`` projections and bins the matrix is a sum over all features (150,000 x ``d_model``
        for a full-width ATAC layer); rebuilding it for every minibatch of an embedding run is pure overhead.
        """
        with torch.no_grad():
            weight = self.projection_weight()
        self._frozen_weight = weight
        try:
            yield
        finally:
            self._frozen_weight = None

    def forward(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        """``(cells, n_features)`` (dense, or its non-zeros) ``-> (cells, n_patches, d_model)``."""
        if not isinstance(x, SparseRows):
            x = SparseRows.from_tensor(x)
        n_cells, n_tokens = x.n_rows, x.n_rows * self.n_patches
        # Each token is a weighted sum of the projection rows of its patch's non-zeros: an embedding bag per
        # (cell, patch), with the values as per-sample weights. Gathering a weight row per non-zero instead
        # materialises a (non-zeros, d_model) tensor several times over, which at full multiome width is most of
        # the step's memory traffic; ``embedding_bag`` (FBGEMM on CPU) sums in place, ~3x faster than the same
        # product as a sparse CSR matrix times the weights (``benchmarks/README.md``).
        small = max(n_tokens, x.values.numel()) < 2**31  # int32 arithmetic, sorts and gathers are ~2x faster
        rows, cols = (x.rows.int(), x.cols.int()) if small else (x.rows, x.cols)
        key = rows * self.n_patches + cols // self.patch_size
        order = stable_order(key, n_tokens)
        cols, values = cols[order], x.values[order]
        offsets = torch.zeros(n_tokens + 1, dtype=cols.dtype, device=key.device)
        offsets[1:] = torch.bincount(key, minlength=n_tokens).cumsum(0)
        with torch.autocast(device_type=key.device.type, enabled=False):  # token sums run in float32
            if self.projection == "shared":
                bias, cols = self.proj.bias, cols % self.patch_size
            else:
                bias = self.proj_bias
            tokens = F.embedding_bag(
                cols, self.projection_weight(), offsets, mode="sum", per_sample_weights=values.float(),
                include_last_offset=True,
            )  # fmt: skip
        # bias and positions are (n_patches, d_model): summed first, so the token tensor is added to once
        return self.dropout(tokens.view(n_cells, self.n_patches, -1) + (bias + self.pos_embedding))


class GatedMLP(nn.Module):
    """SwiGLU feed-forward layer: ``fc2(silu(gate) * value)``."""

    def __init__(self, d_model: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(d_model, 2 * hidden)
        self.fc2 = nn.Linear(hidden, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``(..., d_model)``; returns the same shape."""
        value, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(self.dropout(value * F.silu(gate)))


class MambaBlock(nn.Module):
    """Pre-norm residual Mamba2 mixer followed by a pre-norm residual MLP.

    The last projection of both residual branches starts at zero, so a new block is the identity and the encoder
    starts as its direct path (tokens -> pooling -> head); each block then adds what lowers the loss. Randomly
    initialised branches instead perturb the per-region token projections from the first step on, which costs
    cell-type structure when training is short (a few hundred steps on a laptop-sized data set).
    """

    def __init__(self, d_model: int, mlp_hidden: int, *, dropout: float, **mamba_kwargs):
        super().__init__()
        self.norm_mixer = nn.RMSNorm(d_model, eps=1e-5)
        self.mixer = Mamba2(d_model, **mamba_kwargs)
        self.norm_mlp = nn.RMSNorm(d_model, eps=1e-5)
        self.mlp = GatedMLP(d_model, mlp_hidden, dropout=dropout)
        nn.init.zeros_(self.mixer.out_proj.weight)
        nn.init.zeros_(self.mlp.fc2.weight)
        nn.init.zeros_(self.mlp.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to a ``(batch, length, d_model)`` sequence; returns the same shape."""
        x = x + self.mixer(self.norm_mixer(x))
        return x + self.mlp(self.norm_mlp(x))


Pooling = Literal["flatten", "mean", "last"]


class MambaEncoder(nn.Module):
    """Encode one modality of a cell into an embedding.

    Patch tokens of the genome-ordered profile (:class:`PatchEmbedding`) pass through ``n_layers`` Mamba2 + MLP
    blocks and a final RMSNorm; the tokens are pooled into one vector and an MLP head (``Linear -> BatchNorm ->
    GELU -> Linear``) gives the embedding.

    Parameters
    ----------
    n_features
        Number of features of the modality.
    n_output
        Embedding size.
    patch_size
        Features per token.
    d_model
        Token width.
    n_layers
        Number of (Mamba2, MLP) blocks.
    mlp_hidden
        Hidden width of the block MLPs.
    head_hidden
        Hidden width of the head.
    dropout
        Dropout on the tokens and inside the block MLPs (the head has none).
    pooling
        ``'flatten'``: all tokens side by side (``n_patches * d_model`` values) into the head, so that every
        genomic region keeps its own weights up to the head; ``'mean'``: the mean of the tokens; ``'last'``: the
        last token of the causal scan (the paper's choice).
    projection, bin_size
        See :class:`PatchEmbedding`.
    **mamba_kwargs
        Passed to :class:`~scmamba.nn.Mamba2` (``d_state``, ``headdim``, ``expand``, ``chunk_size`` ...).
    """

    def __init__(
        self,
        n_features: int,
        n_output: int,
        *,
        patch_size: int,
        d_model: int,
        n_layers: int,
        mlp_hidden: int,
        head_hidden: int,
        dropout: float,
        pooling: Pooling,
        projection: Projection,
        bin_size: int | None,
        **mamba_kwargs,
    ):
        super().__init__()
        if pooling not in ("flatten", "mean", "last"):
            raise ValueError(f"pooling must be 'flatten', 'mean' or 'last', got {pooling!r}.")
        self.pooling = pooling
        self.tokenizer = PatchEmbedding(
            n_features, patch_size, d_model, dropout=dropout, projection=projection, bin_size=bin_size
        )
        self.blocks = nn.ModuleList(
            MambaBlock(d_model, mlp_hidden, dropout=dropout, **mamba_kwargs) for _ in range(n_layers)
        )
        self.norm_f = nn.RMSNorm(d_model, eps=1e-5)
        head_in = d_model * self.tokenizer.n_patches if pooling == "flatten" else d_model
        # BatchNorm in the head (as in SimCLR's projection head): the embedding cannot collapse to one point shared
        # by all cells, which the cosine term otherwise drives small models into (InfoNCE stuck at log(batch)).
        self.head = nn.Sequential(nn.Linear(head_in, head_hidden), nn.BatchNorm1d(head_hidden), nn.GELU())
        self.out = nn.Linear(head_hidden, n_output)

    def features(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        """The head's hidden layer, ``(cells, head_hidden)``, of value-encoded, genome-ordered input."""
        return self.pool_and_head(self.tokens(x))

    def tokens(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        """Patch tokens after the blocks and the final norm, ``(cells, n_patches, d_model)``."""
        h = self.tokenizer(x)
        for block in self.blocks:
            h = block(h)
        return self.norm_f(h)

    def pool_and_head(self, h: torch.Tensor) -> torch.Tensor:
        """Pool ``(cells, n_patches, d_model)`` tokens and apply the head's hidden layer."""
        if self.pooling == "flatten":
            pooled = h.flatten(1)
        else:
            pooled = h[:, -1] if self.pooling == "last" else h.mean(dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        """Value-encoded, genome-ordered ``(cells, n_features)`` input (or its non-zeros) -> ``(cells, n_output)``."""
        return self.out(self.features(x))
