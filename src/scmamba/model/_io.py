"""Model folders that load without running code: weights in ``model.pt``, everything else in ``model.json``.

scvi-tools saves a model as one pickle (``model.pt``: weights, var names and the model's attributes) and reads it
back with ``torch.load(weights_only=False)``, which runs whatever code a crafted file carries. Scientists exchange
model folders (supplements, hubs, collaborators), so :meth:`SCMAMBA.save <scmamba.SCMAMBA.save>` writes a folder
that needs no unpickling:

* ``model.pt``: the module's state dict (tensors only), read with ``torch.load(weights_only=True)``;
* ``model.json``: everything else (the registry with the set-up arguments, the init parameters, the var names and
  the attributes such as ``history_``, ``trainable_parameters_``, ``from_reference_``), arrays, tuples and tables as
  tagged JSON values;
* ``mdata.h5mu`` with ``save_anndata=True`` (HDF5: no pickles).

Every reader (``load``, ``load_registry``, ``view_setup_args``, ``load_query_data``) goes through
:func:`read_folder`, which reads each file once. A ``model.pt`` that needs unpickling (a folder written by
scvi-tools' own ``save`` or an older scmamba, or a crafted file) is refused with :class:`UntrustedPickleError`;
``trust_pickle=True`` loads it, for folders whose origin the user trusts.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import pathlib
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mudata
import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS

if TYPE_CHECKING:
    from mudata import MuData

    from ._scmamba import SCMAMBA

logger = logging.getLogger(__name__)

#: ``format`` entry of ``model.json``; ``FORMAT_VERSION`` is raised when the layout changes.
FORMAT = "scmamba-weights-only"
FORMAT_VERSION = 1
MODEL_FNAME = "model.pt"
META_FNAME = "model.json"
MDATA_FNAME = "mdata.h5mu"
#: Attributes a model cannot be rebuilt without (saving fails rather than skipping them).
_REQUIRED = ("registry_", "init_params_")
_TAG = "__type__"
_ARRAY_KINDS = "biufUO"


class UntrustedPickleError(ValueError):
    """A model file needs unpickling, which can run arbitrary code; refused unless ``trust_pickle=True``."""


#: SCMAMBA arguments added after models were first saved, with the value that reproduces the models saved before.
BEFORE_OPTIONS = {"linear_view": None, "layer_weights": "equal", "batch_correction": None, "encoder": "mamba"}


def _untrusted_message(path: str) -> str:
    return (
        f"{path} is not a weights-only file: loading it means unpickling it, and unpickling runs any code the file "
        "carries (arbitrary code execution), so it is refused. Folders written by SCMAMBA.save load without "
        "unpickling; this one was written by scvi-tools' save or an older scmamba, or was altered. Only if you "
        "trust where the folder comes from, pass trust_pickle=True (SCMAMBA.load(folder, mdata, trust_pickle=True); "
        "load_registry, view_setup_args and load_query_data take it too), then model.save(new_folder) writes a "
        "folder that loads without it."
    )


class _Unsupported(TypeError):
    pass


# --------------------------------------------------------------------------------------------------- JSON values


def _float_to_json(x: float):
    return x if math.isfinite(x) else {_TAG: "float", "value": repr(x)}


def _array_to_json(a: np.ndarray, where: str) -> dict:
    if a.dtype.kind not in _ARRAY_KINDS:
        raise _Unsupported(f"{where}: an array of dtype {a.dtype}")
    items = a.ravel().tolist()
    if a.dtype.kind == "O":  # strings (names, categories), Python numbers (scvi-tools' history): each a JSON value
        items = [to_json(x, f"{where}[{i}]") for i, x in enumerate(items)]
        dtype = "object"
    else:
        dtype = a.dtype.str
    if a.dtype.kind == "f":
        items = [x if math.isfinite(x) else repr(x) for x in items]
    return {_TAG: "ndarray", "dtype": dtype, "shape": list(a.shape), "data": items}


def to_json(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON values; arrays, numpy scalars, tuples, paths, non-string keys, pandas tables tagged.

    Raises a ``TypeError`` naming ``where`` for anything else (objects that only a pickle could restore).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            raise _Unsupported(f"{where}: a numpy {value.dtype} scalar")
        item = value.item()
        return {
            _TAG: "scalar",
            "dtype": value.dtype.str,
            "value": _float_to_json(item) if value.dtype.kind == "f" else item,
        }
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _float_to_json(value)
    if isinstance(value, list):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, Mapping):
        if _TAG not in value and all(isinstance(k, str) for k in value):  # a defaultdict is read back as a dict
            return {k: to_json(v, f"{where}.{k}") for k, v in value.items()}
        return {_TAG: "dict", "items": [[to_json(k, where), to_json(v, f"{where}.{k}")] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        return _array_to_json(value, where)
    if isinstance(value, os.PathLike):  # e.g. an annotation file given to setup_mudata
        return {_TAG: "path", "value": os.fspath(value)}
    if isinstance(value, pd.Index):
        return {_TAG: "Index", "name": to_json(value.name, where), "values": _array_to_json(np.asarray(value), where)}
    if isinstance(value, pd.Series):
        return {
            _TAG: "Series",
            "name": to_json(value.name, where),
            "index": to_json(value.index, where),
            "values": _array_to_json(np.asarray(value), where),
        }
    if isinstance(value, pd.DataFrame):
        return {
            _TAG: "DataFrame",
            "index": to_json(value.index, where),
            "columns": to_json(value.columns, where),
            "data": [_array_to_json(np.asarray(value.iloc[:, i]), f"{where}[{i}]") for i in range(value.shape[1])],
        }
    raise _Unsupported(f"{where}: a {type(value).__module__}.{type(value).__qualname__}")


def _array_from_json(value: Mapping) -> np.ndarray:
    dtype = np.dtype(value["dtype"])
    if dtype.kind not in _ARRAY_KINDS:
        raise ValueError(f"model.json holds an array of dtype {dtype}, which SCMAMBA.save does not write.")
    data = value["data"]
    if dtype.kind == "O":
        out = np.empty(len(data), dtype=object)
        for i, x in enumerate(data):
            out[i] = from_json(x)
    else:
        if dtype.kind == "f":
            data = [float(x) if isinstance(x, str) else x for x in data]
        out = np.array(data, dtype=dtype)
    return out.reshape(value["shape"])


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`; builds only plain values, numpy arrays and pandas tables (no code runs)."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: from_json(v) for k, v in value.items()}
    if tag == "float":
        return float(value["value"])
    if tag == "scalar":
        item = value["value"]
        return np.dtype(value["dtype"]).type(from_json(item))
    if tag == "tuple":
        return tuple(from_json(v) for v in value["items"])
    if tag == "dict":
        return {from_json(k): from_json(v) for k, v in value["items"]}
    if tag == "ndarray":
        return _array_from_json(value)
    if tag == "path":
        return pathlib.Path(value["value"])
    if tag == "Index":
        return pd.Index(_array_from_json(value["values"]), name=from_json(value["name"]))
    if tag == "Series":
        return pd.Series(
            _array_from_json(value["values"]), index=from_json(value["index"]), name=from_json(value["name"])
        )
    if tag == "DataFrame":
        columns = [_array_from_json(c) for c in value["data"]]
        frame = pd.DataFrame(dict(enumerate(columns)), index=from_json(value["index"]))
        frame.columns = from_json(value["columns"])
        return frame
    raise ValueError(f"model.json holds a value tagged {tag!r}, which SCMAMBA.save does not write.")


# --------------------------------------------------------------------------------------------------- the folder


@dataclass
class SavedModel:
    """What a model folder (or a model in memory) holds: attributes, var names and, unless skipped, the weights."""

    attributes: dict
    var_names: Any
    state_dict: dict[str, torch.Tensor] | None
    mdata_path: str | None = None

    @property
    def registry(self) -> dict:
        return self.attributes["registry_"]

    @classmethod
    def from_model(cls, model: SCMAMBA) -> SavedModel:
        """A copy of a model in memory (what :meth:`SCMAMBA.save` would write), for ``load_query_data``."""
        attributes = {name: copy.deepcopy(value) for name, value in saved_attributes(model)}
        state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
        return cls(attributes, model.get_var_names(), state)


def saved_attributes(model: SCMAMBA) -> list[tuple[str, object]]:
    """The model attributes a folder keeps: scvi-tools' convention, instance attributes whose name ends in ``_``."""
    return [(name, value) for name, value in vars(model).items() if name.endswith("_") and not name.startswith("_")]


def _paths(dir_path: str | os.PathLike, prefix: str | None) -> dict[str, str]:
    prefix = prefix or ""
    names = {"model": MODEL_FNAME, "meta": META_FNAME, "mdata": MDATA_FNAME}
    return {key: os.path.join(os.fspath(dir_path), f"{prefix}{name}") for key, name in names.items()}


def write_folder(
    model: SCMAMBA,
    dir_path: str | os.PathLike,
    *,
    prefix: str | None = None,
    overwrite: bool = False,
    save_anndata: bool = False,
    save_kwargs: dict | None = None,
    legacy_mudata_format: bool = False,
    **anndata_write_kwargs,
) -> None:
    """Write ``model`` to ``dir_path`` in the weights-only layout (module docstring); the body of ``SCMAMBA.save``.

    Attributes JSON cannot hold (objects only a pickle could restore) are left out with a warning naming them;
    the registry and the init parameters are always written (an error names the value when they cannot be).
    """
    dir_path = os.fspath(dir_path)
    if os.path.exists(dir_path) and not overwrite:
        raise ValueError(f"{dir_path} already exists. Please provide another directory for saving, or overwrite=True.")
    attributes = {}
    for name, value in saved_attributes(model):
        try:
            attributes[name] = to_json(value, name)
        except _Unsupported as err:
            if name in _REQUIRED:
                raise TypeError(f"The model cannot be saved: {err} cannot be written as JSON.") from None
            warnings.warn(
                f"The model attribute {name!r} is not saved ({err}): a model folder holds tensors, arrays, tables "
                "and plain values only, so that it loads without unpickling.",
                UserWarning,
                stacklevel=3,
            )
    from .. import __version__

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scmamba_version": __version__,
        "model_class": type(model).__name__,
        "var_names": to_json(model.get_var_names(legacy_mudata_format=legacy_mudata_format), "var_names"),
        "attributes": attributes,
    }
    text = json.dumps(meta, allow_nan=False)  # before any file is written: a value that fails leaves no half folder
    os.makedirs(dir_path, exist_ok=True)
    paths = _paths(dir_path, prefix)
    if save_anndata:
        model.adata.write_h5mu(paths["mdata"], **anndata_write_kwargs)
    torch.save(dict(model.module.state_dict()), paths["model"], **(save_kwargs or {}))
    with open(paths["meta"], "w", encoding="utf-8") as handle:
        handle.write(text)


def _load_pickle(path: str, trust_pickle: bool) -> Any:
    """``torch.load`` with weights only; with ``trust_pickle`` a full unpickling (one read either way)."""
    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UntrustedPickleError(_untrusted_message(path)) from None


def _check_state_dict(state: Any, path: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a model's weights (a dict of tensors).")
    return dict(state)


def read_folder(
    dir_path: str | os.PathLike,
    *,
    prefix: str | None = None,
    trust_pickle: bool = False,
    weights: bool = True,
) -> SavedModel:
    """Read a model folder once: ``model.json`` and (``weights``) ``model.pt`` with ``weights_only=True``.

    A folder without ``model.json`` has scvi-tools' layout (one pickled ``model.pt``); it is read only with
    ``trust_pickle=True``, else :class:`UntrustedPickleError` says why and what to do. ``weights=False`` reads
    the attributes only (``load_registry``), which for a weights-only folder does not open ``model.pt``.
    """
    dir_path = os.fspath(dir_path)
    paths = _paths(dir_path, prefix)
    mdata_path = paths["mdata"] if os.path.exists(paths["mdata"]) else None
    if os.path.exists(paths["meta"]):
        with open(paths["meta"], encoding="utf-8") as handle:
            meta = json.load(handle)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{paths['meta']} is not a model description written by SCMAMBA.save.")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{dir_path} was written by a newer scmamba ({meta.get('scmamba_version')}, folder format "
                f"{meta['format_version']}); update scmamba to load it."
            )
        state = None
        if weights:
            state = _check_state_dict(_load_pickle(paths["model"], trust_pickle), paths["model"])
        return SavedModel(from_json(meta["attributes"]), from_json(meta["var_names"]), state, mdata_path)
    if not os.path.exists(paths["model"]):
        where = f" (file prefix {prefix!r})" if prefix else ""
        raise FileNotFoundError(
            f"{dir_path} has no {os.path.basename(paths['model'])}{where}: not a saved model folder."
        )
    # scvi-tools' layout: weights, var names and attributes in one pickle
    content = _load_pickle(paths["model"], trust_pickle)
    if not isinstance(content, Mapping) or not isinstance(content.get("attr_dict"), Mapping):
        raise ValueError(f"{paths['model']} is not a saved model (no attr_dict).")
    state = dict(content.get("model_state_dict") or {})
    state.pop("pyro_param_store", None)
    return SavedModel(
        dict(content["attr_dict"]), content.get("var_names"), _check_state_dict(state, paths["model"]), mdata_path
    )


# --------------------------------------------------------------------------------------------------- rebuilding


def _is_batch_dependent(key: str) -> bool:
    """State entries whose size follows the number of batches: the decoders' offsets and the batch classifier."""
    return key.endswith("batch_offset") or key.startswith("batch_classifier.")


def _fit_state_dict(module: torch.nn.Module, saved: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The saved weights, grown for batches the registry gained (as scvi-tools' ``load_query_data`` does).

    Rows for new batches keep the new module's initial values (zero offsets; the classifier's initial outputs);
    a classifier the saved model did not have (it had one batch) starts as initialised. Any other difference from
    the module is left to ``load_state_dict``, which names it.
    """
    from ..module._layer import upgrade_state_key

    saved = {upgrade_state_key(k): v for k, v in saved.items()}  # keys of models saved before ModalityLayer
    current = module.state_dict()
    fitted = dict(saved)
    for key, new in current.items():
        if key not in saved:
            # a classifier the saved model did not have; a donor correction it was saved without (the identity)
            if key.startswith(("batch_classifier.", "latent_correction.")):
                fitted[key] = new
            continue
        old = saved[key].to(new.device)
        if old.shape == new.shape or not _is_batch_dependent(key) or old.dim() != new.dim():
            fitted[key] = old
            continue
        grown = old
        for dim in range(new.dim()):
            extra = new.size(dim) - grown.size(dim)
            if extra > 0:
                grown = torch.cat([grown, new.narrow(dim, new.size(dim) - extra, extra)], dim=dim)
        fitted[key] = grown
    return fitted


def single_device(accelerator: str = "auto", device: int | str = "auto") -> torch.device:
    """The one torch device a loaded model lives on, from Lightning-style ``accelerator`` and ``device``.

    As scvi-tools' ``load``: ``'auto'`` picks the first CUDA GPU if there is one, else the CPU (never Apple's
    MPS unless asked for with ``accelerator='mps'``); ``device`` is a device index (``'auto'``: 0).
    """
    if isinstance(device, list | tuple):
        if len(device) != 1:
            raise ValueError(f"A model lives on one device; got device={device!r}. Pass one index, e.g. device=0.")
        device = device[0]
    if isinstance(device, str) and device != "auto":
        if "," in device or not device.strip().lstrip("-").isdigit():
            raise ValueError(f"device must be 'auto' or one device index (e.g. 0), got {device!r}.")
        device = int(device)
    if isinstance(device, int) and device < 0:
        raise ValueError(f"A model lives on one device; got device={device!r}. Pass one index, e.g. device=0.")
    kind = str(accelerator).lower()
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    elif kind == "gpu":
        kind = "mps" if not torch.cuda.is_available() and torch.backends.mps.is_available() else "cuda"
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        return torch.device("mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"accelerator={accelerator!r} asks for a GPU, but PyTorch finds none; use 'cpu' or 'auto'."
            )
        return torch.device("cuda", 0 if device == "auto" else device)
    raise ValueError(f"accelerator must be 'auto', 'cpu', 'gpu', 'cuda' or 'mps', got {accelerator!r}.")


def _batch_categories(registry: Mapping) -> list:
    state = registry.get("field_registries", {}).get(REGISTRY_KEYS.BATCH_KEY, {}).get("state_registry", {})
    return list(state.get("categorical_mapping", []))


def build_model(
    cls: type[SCMAMBA],
    saved: SavedModel,
    mdata: MuData | None,
    *,
    accelerator: str = "auto",
    device: int | str = "auto",
    query: bool = False,
) -> SCMAMBA:
    """A model of class ``cls`` on ``mdata`` with the saved registry, init parameters, attributes and weights.

    ``mdata`` is registered with the saved setup (the checks of ``setup_mudata``; batch categories the model has
    not seen are added to the registry, with new rows of the decoders' batch offsets: the encoders, and so the
    embeddings, do not use the batch). ``mdata=None`` reads the MuData saved with the model. ``query``: a model
    for ``load_query_data`` (``is_trained_`` False; the caller sets its freeze). Otherwise a saved query model's
    freeze is re-applied (only ``trainable_parameters_`` require grad).
    """
    from ..module._layer import upgrade_state_key
    from ._query import check_saved_features, restore_freeze

    registry = saved.registry
    name = registry.get("model_name", cls.__name__)
    if name != cls.__name__:
        raise ValueError(f"The saved model is a {name}, not a {cls.__name__}.")
    if "setup_args" not in registry:
        raise ValueError("The saved model has no set-up arguments in its registry; it cannot be rebuilt.")
    if mdata is None:
        if saved.mdata_path is None:
            raise ValueError(
                "The model folder has no saved MuData (it was saved without save_anndata=True): pass the data, "
                f"{cls.__name__}.load(folder, mdata)."
            )
        mdata = mudata.read_h5mu(saved.mdata_path)
    check_saved_features(mdata, registry, query=query)
    torch_device = single_device(accelerator, device)
    extra = {"allow_missing_labels": True} if query else {}
    cls.setup_mudata(mdata, source_registry=registry, extend_categories=True, **extra, **registry["setup_args"])
    attributes = {k: v for k, v in saved.attributes.items() if k != "registry_"}
    init = attributes.pop("init_params_", None)
    if not isinstance(init, Mapping) or "non_kwargs" not in init:
        raise ValueError("The saved model has no init parameters (init_params_); it cannot be rebuilt.")
    kwargs = {k: v for group in init.get("kwargs", {}).values() for k, v in group.items()}
    # a model saved before these options existed was built without them: rebuild it so, not with today's defaults
    non_kwargs = {**BEFORE_OPTIONS, **init["non_kwargs"]}
    model = cls(mdata, **non_kwargs, **kwargs)
    for attr, value in attributes.items():
        setattr(model, attr, value)
    new_batches = [b for b in _batch_categories(model.adata_manager.registry) if b not in _batch_categories(registry)]
    if new_batches and not query:
        logger.info(
            "Batches new to the model: %s; added to its registry with zero decoder offsets (the embeddings do not "
            "use the batch).",
            new_batches,
        )
    model.module.load_state_dict(_fit_state_dict(model.module, saved.state_dict))
    model.to_device(torch_device)
    model.module.eval()
    if query:
        model.is_trained_ = False
        return model
    if getattr(model, "trainable_parameters_", None) is not None:
        model.trainable_parameters_ = [upgrade_state_key(n) for n in model.trainable_parameters_]  # older names
        restore_freeze(model.module, model.trainable_parameters_, getattr(model, "trainable_groups_", None))
    model.adata_manager.check_data()  # the loaded model's data against its registry, before it is used
    return model
