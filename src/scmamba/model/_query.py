"""Which parameters a query model trains: the freezing policy of :meth:`SCMAMBA.load_query_data`.

scvi-tools' ``ArchesMixin`` freezes by the naming rules of its ``FCLayers`` (batch-covariate columns stay
trainable). SCMAMBA has no ``FCLayers`` and no batch covariates, so those rules would freeze every parameter; the
encoders are instead split into named parameter groups that a query may adapt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..nn import RMSNormGated

#: Parameter groups a query model can train.
QUERY_GROUPS = ("norms", "embedding", "head", "all")

_NORM_TYPES = (nn.RMSNorm, nn.LayerNorm, nn.BatchNorm1d, RMSNormGated)


def _group_parameter_names(module: nn.Module) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {"norms": set(), "embedding": set(), "head": set()}
    for mod_name, sub in module.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        own = {prefix + n for n, _ in sub.named_parameters(recurse=False)}
        if isinstance(sub, _NORM_TYPES):
            groups["norms"] |= own
        if mod_name.endswith(".tokenizer"):
            groups["embedding"] |= {prefix + n for n, _ in sub.named_parameters()}
        if mod_name.endswith(".head"):
            groups["head"] |= {prefix + n for n, _ in sub.named_parameters()}
    return groups


def freeze_for_query(module: nn.Module, trainable: str | Iterable[str]) -> list[str]:
    """Set ``requires_grad`` so that only the ``trainable`` groups train; return the trainable parameter names.

    Groups: ``'norms'`` (scales and biases of every RMSNorm/BatchNorm, including Mamba2's gated norm),
    ``'embedding'`` (patch projections and position embeddings), ``'head'`` (the MLP heads), ``'all'``.
    BatchNorm running statistics are frozen too unless ``'norms'`` or ``'all'`` is trainable (momentum 0).
    """
    chosen = {trainable} if isinstance(trainable, str) else set(trainable)
    unknown = chosen - set(QUERY_GROUPS)
    if unknown or not chosen:
        raise ValueError(f"trainable must be one or more of {QUERY_GROUPS}, got {sorted(unknown) or 'nothing'}.")
    groups = _group_parameter_names(module)
    names = {n for n, _ in module.named_parameters()}
    keep = names if "all" in chosen else set().union(*(groups[g] for g in chosen))
    for name, p in module.named_parameters():
        p.requires_grad_(name in keep)
    if not ({"norms", "all"} & chosen):
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm1d):
                sub.momentum = 0.0  # running statistics stay the reference's
    return sorted(keep)


def extend_batch_offsets(state_dict: Mapping[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """The reference ``state_dict`` with the decoders' per-batch offsets grown to the query's batch categories.

    A query registered with ``extend_categories=True`` may add batches; the reference has no offsets for them, and
    a zero offset (no batch-specific shift) is what an unseen batch gets. A reference trained on one batch has no
    offsets at all; the query module's zero-initialised ones are kept. Embeddings do not use the offsets.
    """
    out = dict(state_dict)
    for name, target in module.state_dict().items():
        if not name.endswith("batch_offset"):
            continue
        source = out.get(name)
        if source is None:
            out[name] = torch.zeros_like(target)
        elif source.shape[0] < target.shape[0]:
            out[name] = torch.cat([source, source.new_zeros(target.shape[0] - source.shape[0], *source.shape[1:])])
    return out
