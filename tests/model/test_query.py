"""Reference -> query mapping: load_query_data starts from the reference and fine-tunes only what it is told to."""

from __future__ import annotations

import copy
import warnings

import mudata as md
import numpy as np
import pytest
import torch

from scmamba import SCMAMBA
from scmamba.model._query import freeze_for_query


def _query_with_new_batch(query):
    q = query.copy()
    for m in (q, q.mod["rna"]):
        m.obs["batch"] = "new_library"
    return q


def test_query_model_embeds_like_reference_before_training(trained):
    model, _, query = trained
    q = _query_with_new_batch(query)
    qmodel = SCMAMBA.load_query_data(q, model)
    assert not qmodel.is_trained_ and qmodel.from_reference_
    # the new library gets a new row of batch offsets (zero: no shift yet); the reference's rows are kept
    for m in ("rna", "atac"):
        ref_offset, offset = (x.module.decoders[m].batch_offset.detach().cpu() for x in (model, qmodel))
        assert offset.shape[0] == ref_offset.shape[0] + 1
        torch.testing.assert_close(offset[:-1], ref_offset)
        assert not offset[-1].any()
    with warnings.catch_warnings():
        # the reference's weights are trained: no untrained-model warning
        warnings.filterwarnings("error", message="Trying to query inferred values from an untrained model")
        qmodel.get_latent_representation()
    for modality in ("rna", "atac"):
        np.testing.assert_allclose(
            # the same encoders; the donor correction depends on how each model registered the cells' batches
            qmodel.get_latent_representation(modality=modality, batch_corrected=False),
            model.get_latent_representation(query, modality=modality, batch_corrected=False),
            atol=1e-6,
        )
    mapping = qmodel.adata_manager.get_state_registry("batch")["categorical_mapping"]
    ref_mapping = model.adata_manager.get_state_registry("batch")["categorical_mapping"]
    assert list(mapping[: len(ref_mapping)]) == list(ref_mapping) and "new_library" in mapping


def test_query_fine_tuning_trains_only_the_chosen_group(trained, tmp_path):
    model, _, query = trained
    model.save(tmp_path / "ref", overwrite=True)
    qmodel = SCMAMBA.load_query_data(_query_with_new_batch(query), tmp_path / "ref", trainable="norms")
    before = {n: p.detach().clone() for n, p in qmodel.module.named_parameters()}
    bn_before = {n: b.clone() for n, b in qmodel.module.named_buffers() if "running" in n}
    trainable = set(qmodel.trainable_parameters_)
    # norms (RMSNorm/BatchNorm scales and biases), the decoders' per-batch offsets (a new batch needs its row) and
    # the adversarial batch classifier (a new batch needs its output; neither enters the embedding)
    adversary = {n for n in trainable if n.startswith("batch_classifier.")}
    assert adversary, "the default model (lambda_adv > 0, several batches) has a batch classifier"
    assert qmodel.module.batch_classifier.n_batch == model.module.batch_classifier.n_batch + 1
    assert all("norm" in n or ".head.1." in n or n.endswith("batch_offset") for n in trainable - adversary)
    assert {n for n in trainable if n.endswith("batch_offset")} == {
        "layers.rna.decoder.batch_offset",
        "layers.atac.decoder.batch_offset",
    }
    qmodel.train(max_epochs=2, batch_size=64, enable_progress_bar=False)
    changed = {n for n, p in qmodel.module.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, "fine-tuning changed nothing"
    assert changed <= trainable, f"frozen parameters changed: {sorted(changed - trainable)[:5]}"
    for n, b in qmodel.module.named_buffers():
        if n in bn_before:  # norms are trainable, so BatchNorm statistics adapt to the query
            assert not torch.equal(b, bn_before[n])


def test_frozen_groups_keep_batchnorm_statistics(trained):
    model, _, _ = trained
    module = copy.deepcopy(model.module)
    names = freeze_for_query(module, "embedding")
    assert names and all(
        ".tokenizer." in n or n.endswith("batch_offset") or n.startswith("batch_classifier.") for n in names
    )
    stats = {n: b.clone() for n, b in module.named_buffers() if "running_mean" in n}
    module.train()
    module.embed("atac", torch.poisson(torch.full((32, module.encoders["atac"].tokenizer.n_features), 0.5)))
    for n, b in module.named_buffers():
        if n in stats:
            assert torch.equal(b, stats[n])
    assert len(freeze_for_query(module, "all")) == sum(1 for _ in module.parameters())
    with pytest.raises(ValueError, match="trainable must be"):
        freeze_for_query(module, "decoder")


def test_query_with_wrong_features_or_modality_is_an_error(trained):
    model, _, query = trained
    with pytest.raises(ValueError, match="prepare_query_mudata"):
        SCMAMBA.load_query_data(md.MuData({"rna": query.mod["rna"][:, 1:].copy(), "atac": query.mod["atac"]}), model)
    with pytest.raises(TypeError, match="MuData"):
        SCMAMBA.load_query_data(query.mod["rna"], model)
    aligned = SCMAMBA.prepare_query_mudata(query, model, inplace=False)
    assert SCMAMBA.load_query_data(aligned, model).adata.n_obs == query.n_obs


def test_prepare_query_mudata_keeps_the_arches_contract(trained, tmp_path):
    """As scvi-tools' ArchesMixin: a model or its folder; ``inplace`` (the default) changes the MuData, returns None."""
    model, _, query = trained
    fewer = query[:, query["atac"].var_names[5:].tolist() + query["rna"].var_names.tolist()].copy()
    fewer.uns["note"] = "kept"
    folder = tmp_path / "ref"
    model.save(folder)
    expected = SCMAMBA.prepare_query_mudata(fewer, model, inplace=False)
    assert fewer["atac"].n_vars == query["atac"].n_vars - 5  # inplace=False leaves the input alone
    from_folder = SCMAMBA.prepare_query_mudata(fewer, str(folder), inplace=False)
    for m in expected.mod:
        assert from_folder[m].var_names.equals(expected[m].var_names)
        assert (from_folder[m].X != expected[m].X).nnz == 0
    names = SCMAMBA.prepare_query_mudata(fewer, folder, return_reference_var_names=True)
    assert {m: list(v) for m, v in names.items()} == {m: list(model.get_var_names()[m]) for m in model.adata.mod}
    in_place = fewer.copy()
    assert SCMAMBA.prepare_query_mudata(in_place, folder) is None
    assert in_place.obs_names.equals(query.obs_names) and in_place.uns["note"] == "kept"
    for m in expected.mod:
        assert in_place[m].var_names.equals(expected[m].var_names)
        assert (in_place[m].X != expected[m].X).nnz == 0
    np.testing.assert_array_equal(model.get_latent_representation(in_place), model.get_latent_representation(expected))
    with pytest.raises(TypeError, match="folder it was saved to"):
        SCMAMBA.prepare_query_mudata(fewer, 3)
