"""SCMAMBA's per-modality arguments: one value per encoded modality from an int, a dict or ``None``."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from .._constants import MODALITY_LAYER_ARGS
from ._presets import (
    PER_MODALITY_DEFAULTS,
    default_encoders,
)

logger = logging.getLogger(__name__)


def _per_modality(name: str, value, modalities: Sequence[str]) -> dict:
    """One value per modality from an int/float, a dict or ``None``.

    Modalities a dict leaves out take the per-modality default (``PER_MODALITY_DEFAULTS``); where the argument has
    none (its default is one value for all modalities), a dict must name every modality.
    """
    default = PER_MODALITY_DEFAULTS.get(name, {})
    if value is None:
        return {m: default.get(m) for m in modalities}
    if isinstance(value, Mapping):
        unknown = set(value) - set(MODALITY_LAYER_ARGS)
        if unknown:
            raise ValueError(f"{name} has values for unknown modalities {sorted(unknown)}; use {list(modalities)}.")
        missing = [m for m in modalities if m not in value and m not in default]
        if missing:
            raise ValueError(f"{name} has no value for {missing}: give one per modality of {list(modalities)}.")
        return {m: value.get(m, default.get(m)) for m in modalities}
    return dict.fromkeys(modalities, value)


def _patch_sizes(patch_size, max_tokens: int | None, n_features: Mapping[str, int]) -> dict[str, int]:
    """Features per token of each modality: ``patch_size``, grown where it would give more than ``max_tokens``."""
    sizes = _per_modality("patch_size", patch_size, list(n_features))
    if max_tokens is None:
        return sizes
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer or None, got {max_tokens}.")
    return {m: max(size, math.ceil(n_features[m] / max_tokens)) for m, size in sizes.items()}


#: How ``SCMAMBA(encoder=...)`` embeds a layer: a Mamba2 encoder (and the linear view), or the linear view alone.
ENCODER_KINDS = ("mamba", "linear")


def resolve_encoders(encoder, modalities: Sequence[str], linear_view: bool, n_paired: int) -> dict[str, str]:
    """``'mamba'`` or ``'linear'`` per modality from ``SCMAMBA(encoder=...)`` (see its docstring).

    Modalities that ``encoder`` leaves out (``None``, or a dict without them) get :func:`default_encoders` for
    ``n_paired`` cells measured in both layers.
    """
    defaults = default_encoders(modalities, n_paired)
    if encoder is None:
        chosen = defaults
    elif isinstance(encoder, Mapping):
        given = _per_modality("encoder", encoder, modalities)  # checks the modality names
        chosen = {m: given[m] if m in encoder else defaults[m] for m in modalities}
    else:
        chosen = _per_modality("encoder", encoder, modalities)
    bad = {m: kind for m, kind in chosen.items() if kind not in ENCODER_KINDS}
    if bad:
        raise ValueError(f"encoder must be one of {ENCODER_KINDS} (one value or a dict per modality), got {bad}.")
    if linear_view:
        return chosen
    asked = {encoder} if isinstance(encoder, str) else set(encoder.values()) if isinstance(encoder, Mapping) else set()
    if "linear" in asked:
        raise ValueError(
            "encoder='linear' embeds a layer by its classic reduction, which linear_view=None turns off: give "
            "linear_view a number of components (e.g. linear_view=50), or use encoder='mamba'."
        )
    return dict.fromkeys(modalities, "mamba")
