"""Which parameters a query model trains: the freezing policy of :meth:`SCMAMBA.load_query_data`.

scvi-tools' ``ArchesMixin`` freezes by the naming rules of its ``FCLayers`` (batch-covariate columns stay
trainable). SCMAMBA has no ``FCLayers`` (its batch covariate is the decoders' per-batch offset, which always
trains), so those rules would freeze every parameter; the encoders are instead split into named parameter groups
that a query may adapt.
"""

from __future__ import annotations

from collections.abc import Iterable

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
        if mod_name.endswith((".head", ".out")):
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
    # the decoders' per-batch offsets and the batch classifier always train: a new batch's rows start untrained;
    # both enter the training loss only, never the embedding
    keep |= {n for n in names if n.endswith("batch_offset") or n.startswith("batch_classifier.")}
    for name, p in module.named_parameters():
        p.requires_grad_(name in keep)
    if not ({"norms", "all"} & chosen):
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm1d):
                sub.momentum = 0.0  # running statistics stay the reference's
    return sorted(keep)
