"""Model folders: weights-only on disk, no code runs on load, new batches at load, a query model's freeze kept."""

from __future__ import annotations

import json
import pathlib

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from scvi.model.base import BaseModelClass

from scmamba import SCMAMBA
from scmamba.model import UntrustedPickleError
from scmamba.model._io import from_json, to_json

SETUP = {"batch_key": "batch", "modalities": {"rna_layer": "rna", "atac_layer": "atac", "batch_key": "rna"}}


def _fresh(demo_mdata, rows=slice(0, 300)) -> md.MuData:
    m = demo_mdata[rows].copy()
    SCMAMBA.setup_mudata(m, **SETUP)
    return m


@pytest.fixture(scope="module")
def small(demo_mdata):
    """The issue's reproduction: 300 demo cells, small config, one epoch."""
    scvi.settings.seed = 0
    m = _fresh(demo_mdata)
    model = SCMAMBA(m, **SCMAMBA.small_config())
    model.train(max_epochs=1, enable_progress_bar=False)
    return model, m


def _new_library(m: md.MuData, cells=slice(None)) -> md.MuData:
    """A copy of ``m`` whose ``cells`` come from a library the model has not seen (batch 'new_library')."""
    q = m.copy()
    batch = q.mod["rna"].obs["batch"].astype(str).to_numpy()
    batch[cells] = "new_library"
    q.mod["rna"].obs["batch"] = batch
    return q


class _Payload:
    """Pickles to a call of ``exec`` that writes ``marker``: what a crafted ``model.pt`` carries."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture
def count_torch_load(monkeypatch):
    """Every ``torch.load`` call's ``weights_only``, in order."""
    calls = []
    load = torch.load

    def counting(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return calls


def test_folder_is_weights_and_json_and_round_trips(small, tmp_path, count_torch_load):
    model, m = small
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.pt"]
    count_torch_load.clear()
    weights = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert weights.keys() == model.module.state_dict().keys()
    assert all(isinstance(v, torch.Tensor) for v in weights.values())

    def no_constants(name):
        raise AssertionError(f"model.json is not strict JSON ({name})")

    meta = json.loads((tmp_path / "m" / "model.json").read_text(), parse_constant=no_constants)
    assert meta["attributes"]["registry_"]["setup_args"]["modalities"] == SETUP["modalities"]

    count_torch_load.clear()
    loaded = SCMAMBA.load(tmp_path / "m", m.copy())
    assert count_torch_load == [True], "load reads model.pt once, with weights_only=True"
    np.testing.assert_array_equal(loaded.get_latent_representation(), model.get_latent_representation())
    assert loaded.init_params_ == model.init_params_ and loaded.is_trained_
    assert loaded.history_.keys() == model.history_.keys()
    for key, frame in model.history_.items():
        assert loaded.history_[key].equals(frame), key
    np.testing.assert_array_equal(loaded.train_indices_, model.train_indices_)
    saved_batches = loaded.registry_["field_registries"]["batch"]["state_registry"]["categorical_mapping"]
    assert list(saved_batches) == list(model.adata_manager.get_state_registry("batch")["categorical_mapping"])

    count_torch_load.clear()
    assert SCMAMBA.load_registry(tmp_path / "m")["setup_args"]["batch_key"] == "batch"
    assert count_torch_load == [], "the registry is in model.json: model.pt is not opened"


def test_json_values_round_trip():
    frame = pd.DataFrame({"loss": np.array([1.5, np.nan], dtype=object)}, index=pd.Index([0, 1], name="epoch"))
    value = {
        "tuple": (1, "a", None),
        "keys": {1: "one"},
        "array": np.array([[1, 2], [3, 4]], dtype=np.int32),
        "names": np.array(["a", "b"], dtype=object),
        "scalar": np.float32(0.5),
        "inf": float("inf"),
        "path": pathlib.Path("genes.gtf"),
        "frame": frame,
    }
    back = from_json(json.loads(json.dumps(to_json(value), allow_nan=False)))
    assert back["tuple"] == (1, "a", None) and back["keys"] == {1: "one"} and back["inf"] == float("inf")
    assert back["array"].dtype == np.int32 and np.array_equal(back["array"], value["array"])
    assert back["scalar"].dtype == np.float32 and back["path"] == pathlib.Path("genes.gtf")
    assert back["frame"].equals(frame)
    with pytest.raises(TypeError, match=r"where\.x: a builtins\.object"):
        to_json({"x": object()}, "where")


def _crafted_folder(model, path: pathlib.Path, marker: pathlib.Path, layout: str) -> None:
    """A folder whose ``model.pt`` runs code when unpickled: a weights-only folder with the file swapped, or scvi's."""
    if layout == "weights-only":
        model.save(path)
    else:
        path.mkdir()
    evil = {"model_state_dict": {}, "var_names": [], "attr_dict": _Payload(marker)}
    torch.save(evil, path / "model.pt")


ENTRY_POINTS = {
    "load": lambda folder, m: SCMAMBA.load(folder, m),
    "load_query_data": lambda folder, m: SCMAMBA.load_query_data(m, folder),
    "load_registry": lambda folder, m: SCMAMBA.load_registry(folder),
    "view_setup_args": lambda folder, m: SCMAMBA.view_setup_args(folder),
}


@pytest.mark.parametrize("layout", ["weights-only", "scvi"])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_crafted_pickle_is_refused_and_never_runs(small, demo_mdata, tmp_path, layout, entry):
    model, _ = small
    marker = tmp_path / "marker.txt"
    folder = tmp_path / "m"
    _crafted_folder(model, folder, marker, layout)
    reads_weights = entry in ("load", "load_query_data")
    if layout == "weights-only" and not reads_weights:
        ENTRY_POINTS[entry](folder, demo_mdata[:300].copy())  # the registry is JSON: model.pt is never opened
    else:
        with pytest.raises(UntrustedPickleError, match=r"arbitrary code execution") as err:
            ENTRY_POINTS[entry](folder, demo_mdata[:300].copy())
        assert "trust_pickle=True" in str(err.value) and str(folder / "model.pt") in str(err.value)
    assert not marker.exists(), "the crafted pickle ran"
    # the payload is real: unpickling the file runs it
    torch.load(folder / "model.pt", weights_only=False)
    assert marker.read_text() == "code ran"


def test_trust_pickle_loads_a_scvi_format_folder_and_the_advice_works(small, tmp_path):
    model, m = small
    legacy = tmp_path / "legacy"
    BaseModelClass.save(model, str(legacy))  # scvi-tools' own layout: one pickled model.pt
    for call in (
        lambda: SCMAMBA.load(legacy, m.copy()),
        lambda: SCMAMBA.load_registry(legacy),
        lambda: SCMAMBA.load_query_data(m.copy(), legacy),
    ):
        with pytest.raises(UntrustedPickleError, match="arbitrary code execution"):
            call()
    # the advice of the message: trust_pickle=True for a trusted folder, then save a weights-only folder
    loaded = SCMAMBA.load(legacy, m.copy(), trust_pickle=True)
    expected = model.get_latent_representation()
    np.testing.assert_array_equal(loaded.get_latent_representation(), expected)
    assert SCMAMBA.load_registry(legacy, trust_pickle=True)["setup_args"]["batch_key"] == "batch"
    SCMAMBA.view_setup_args(legacy, trust_pickle=True)
    qmodel = SCMAMBA.load_query_data(m.copy(), legacy, trust_pickle=True)
    np.testing.assert_allclose(qmodel.get_latent_representation(), expected, atol=1e-6)
    loaded.save(tmp_path / "converted")
    again = SCMAMBA.load(tmp_path / "converted", m.copy())
    np.testing.assert_array_equal(again.get_latent_representation(), expected)


@pytest.mark.parametrize("cells", [slice(None), slice(0, 50)], ids=["all-new", "some-new"])
def test_load_onto_a_new_library(small, tmp_path, cells):
    model, m = small
    model.save(tmp_path / "m")
    q = _new_library(m, cells)
    loaded = SCMAMBA.load(tmp_path / "m", q)
    ref_batches = list(model.adata_manager.get_state_registry("batch")["categorical_mapping"])
    batches = list(loaded.adata_manager.get_state_registry("batch")["categorical_mapping"])
    assert batches == [*ref_batches, "new_library"]
    # the encoders do not use the batch: the same cells embed as before (before the donor correction, which leaves
    # the new library's cells as they are)
    np.testing.assert_array_equal(
        loaded.get_latent_representation(batch_corrected=False), model.get_latent_representation(batch_corrected=False)
    )
    for modality in ("rna", "atac"):
        ref_offset = model.module.decoders[modality].batch_offset.detach().cpu()
        offset = loaded.module.decoders[modality].batch_offset.detach().cpu()
        assert offset.shape[0] == ref_offset.shape[0] + 1
        torch.testing.assert_close(offset[:-1], ref_offset)
        assert not offset[-1].any()
    loaded.train(max_epochs=1, batch_size=64, enable_progress_bar=False)  # training sees the new batch


def test_new_batch_onto_a_one_batch_model(demo_mdata, tmp_path):
    """A model saved with one batch has no batch classifier; loading onto two batches adds an untrained one."""
    batch = demo_mdata.mod["rna"].obs["batch"].astype(str).to_numpy()
    first = np.flatnonzero(batch == batch[0])[:200]
    other = np.flatnonzero(batch != batch[0])[:100]
    one = _fresh(demo_mdata, first)
    model = SCMAMBA(one, **SCMAMBA.small_config())
    assert not hasattr(model.module, "batch_classifier")
    model.save(tmp_path / "m")
    both = demo_mdata[np.sort(np.concatenate([first, other]))].copy()
    for load in (SCMAMBA.load, lambda folder, q: SCMAMBA.load_query_data(q, folder)):
        loaded = load(tmp_path / "m", both.copy())
        assert loaded.module.batch_classifier.n_batch == 2
        z = loaded.get_latent_representation()
        assert z.shape == (both.n_obs, 16) and np.isfinite(z).all()


@pytest.mark.parametrize("trainable", ["norms", "embedding"])
def test_query_freeze_survives_save_and_load(small, tmp_path, trainable):
    model, m = small
    q = _new_library(m)
    qmodel = SCMAMBA.load_query_data(q, model, trainable=trainable)
    qmodel.save(tmp_path / "q")
    loaded = SCMAMBA.load(tmp_path / "q", q.copy())
    assert loaded.trainable_parameters_ == qmodel.trainable_parameters_
    assert loaded.from_reference_ and not loaded.is_trained_
    group = set(loaded.trainable_parameters_)
    requires_grad = {n for n, p in loaded.module.named_parameters() if p.requires_grad}
    assert requires_grad == group
    assert len(group) < sum(1 for _ in loaded.module.parameters())
    before = {n: t.detach().clone() for n, t in loaded.module.state_dict().items()}
    loaded.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    after = loaded.module.state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n]) and not n.endswith("num_batches_tracked")}
    assert changed & group, "one epoch changed nothing in the trainable group"
    running = {n for n in changed if ".running_" in n}
    outside = changed - group - running
    assert not outside, f"frozen tensors changed: {sorted(outside)[:5]}"
    if trainable == "norms":
        assert running, "trainable norms: BatchNorm statistics adapt to the query"
    else:
        assert not running, f"frozen norms: BatchNorm statistics must stay the reference's: {sorted(running)[:3]}"
    assert loaded.trainable_groups_ == [trainable]


def test_folder_saved_before_linear_views_and_layer_weights_loads_as_it_was_built(tmp_path):
    """init parameters without ``linear_view`` / ``layer_weights`` (older folders) rebuild the model without them."""
    import json

    from scmamba.datasets import snareseq_cortex_demo

    m = snareseq_cortex_demo()[:200].copy()
    SCMAMBA.setup_mudata(m, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = SCMAMBA(m, **SCMAMBA.small_config(), linear_view=None, layer_weights="equal")
    model.train(max_epochs=1, enable_progress_bar=False)
    model.save(tmp_path / "old")
    meta = next((tmp_path / "old").glob("*.json"))
    text = meta.read_text()
    data = json.loads(text)

    def strip(node):
        if isinstance(node, dict):
            for key in ("linear_view", "layer_weights", "layer_weights_", "layer_weights_mode_"):
                node.pop(key, None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(data)
    meta.write_text(json.dumps(data))
    assert "linear_view" not in meta.read_text()
    loaded = SCMAMBA.load(tmp_path / "old", m)
    assert len(loaded.module.linear_views) == 0 and loaded.layer_weights_ == {"rna": 0.5, "atac": 0.5}
    np.testing.assert_allclose(loaded.get_latent_representation(), model.get_latent_representation(), atol=1e-5)
