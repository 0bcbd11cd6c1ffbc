"""One ModalityLayer per modality: the decoders run in generative(), and weights saved before still load."""

import numpy as np
import pytest
import torch

from scmamba.module import ModalityLayer
from scmamba.module._layer import upgrade_state_key
from scmamba.nn import CompositionDecoder, SparseRows

from .test_objective import minibatch, tiny_module


def _old_key(key: str) -> str:
    """The key a model saved before ModalityLayer had for a current key (the inverse of upgrade_state_key)."""
    parts = key.split(".")
    if parts[0] != "layers":
        return key
    modality, part, rest = parts[1], parts[2], parts[3:]
    if part == "order":
        return f"order_{modality}"
    container = {"encoder": "encoders", "decoder": "decoders", "view_projection": "view_projections"}[part]
    return ".".join([container, modality, *rest])


def test_upgrade_state_key_renames_old_containers_and_keeps_current_keys():
    assert upgrade_state_key("encoders.rna.blocks.0.norm.weight") == "layers.rna.encoder.blocks.0.norm.weight"
    assert upgrade_state_key("decoders.atac.batch_offset") == "layers.atac.decoder.batch_offset"
    assert upgrade_state_key("view_projections.protein.weight") == "layers.protein.view_projection.weight"
    assert upgrade_state_key("order_atac") == "layers.atac.order"
    for current in ("layers.rna.encoder.out.weight", "layer_weights", "log_logit_scale", "batch_classifier.net.0.bias"):
        assert upgrade_state_key(current) == current


def test_one_layer_per_modality_holds_order_inverse_dropout_encoder_and_decoder():
    module = tiny_module()
    assert set(module.layers) == {"rna", "atac"}
    layer = module.layers["rna"]
    assert isinstance(layer, ModalityLayer)
    assert module.encoders["rna"] is layer.encoder and module.decoders["rna"] is layer.decoder
    # the inverse order is computed once, kept on the layer (moves with .to()), and not saved
    assert torch.equal(layer.order[layer.position], torch.arange(60))
    assert not any(k.endswith(".position") for k in module.state_dict())
    assert len(tiny_module(lambda_rec=0.0).decoders) == 0


def test_generative_returns_every_reconstruction_and_the_loss_uses_it():
    module = tiny_module().eval()
    tensors = minibatch()
    inference, generative, loss = module(tensors)
    assert set(generative) == {f"logits_{s}_to_{t}" for s in ("rna", "atac") for t in ("rna", "atac")}
    assert generative["logits_rna_to_atac"].shape == (24, 200)
    # the loss term is the decoder's own NLL of the counts (ATAC as presence) from those logits
    batch = tensors["batch"].view(-1).long()
    atac = inference["counts_atac"]
    expected = module.decoders["atac"].nll(inference["z_rna"], atac.with_values(torch.ones_like(atac.values)), batch)
    assert torch.allclose(loss.extra_metrics["rec_rna_to_atac"], expected)
    # predict_profile is the softmax of those logits: shares summing to 1
    shares = module.predict_profile("atac", inference["z_rna"], batch)
    assert torch.allclose(shares, torch.softmax(generative["logits_rna_to_atac"], -1))
    assert torch.allclose(shares.sum(-1), torch.ones(24))


def test_unknown_batch_takes_the_mean_offset():
    decoder = CompositionDecoder(8, 5, n_batch=3)
    with torch.no_grad():
        decoder.batch_offset.copy_(torch.arange(15.0).view(3, 5))
    z = torch.randn(2, 8)
    mean = decoder.logits(z, torch.tensor([-1, -1]))
    per_batch = torch.stack([decoder.logits(z, torch.full((2,), b)) for b in range(3)]).mean(0)
    assert torch.allclose(mean, per_batch, atol=1e-5)
    assert torch.allclose(decoder.logits(z, torch.tensor([2, -1]))[0], decoder.logits(z, torch.tensor([2]))[0])


def test_weights_saved_before_modality_layers_load_and_predict_the_same():
    torch.manual_seed(0)
    module = tiny_module().eval()
    old_state = {_old_key(k): v.clone() for k, v in module.state_dict().items()}
    assert "order_rna" in old_state and "encoders.rna.out.weight" in old_state
    torch.manual_seed(1)
    fresh = tiny_module().eval()
    with torch.no_grad():
        fresh.layers["rna"].order.copy_(torch.arange(60))  # a different order, replaced by the saved one
    fresh.load_state_dict(old_state)
    tensors = minibatch()
    a, b = module(tensors), fresh(tensors)
    for key in a[1]:
        assert torch.allclose(a[1][key], b[1][key])
    assert torch.allclose(a[0]["z_rna"], b[0]["z_rna"])
    assert torch.equal(fresh.layers["rna"].position, module.layers["rna"].position)  # recomputed on load


def test_feature_dropout_out_of_range_names_the_modality():
    with pytest.raises(ValueError, match="feature_dropout must be in"):
        ModalityLayer("rna", torch.arange(4), torch.nn.Identity(), feature_dropout=1.0, n_bins=None)


def test_layer_embeds_like_the_module():
    module = tiny_module().eval()
    x = SparseRows.from_tensor(minibatch()["X"])
    assert torch.allclose(module.embed("rna", x), module.layers["rna"].embed(x))
    assert np.isclose(float(module.embed("rna", x).detach().norm(dim=-1).mean()), 1.0)
