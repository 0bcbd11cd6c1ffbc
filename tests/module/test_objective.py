"""The module's objective: reconstruction terms, batch negatives, zero-initialised blocks, sparse = dense input."""

import numpy as np
import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS

from scmamba.model._presets import small_config
from scmamba.module import ScMambaModule, contrastive_loss
from scmamba.nn import MambaBlock, SparseRows


def tiny_module(lambda_rec=1.0, batch_negatives=False, n_batch=3, pooling="flatten", lambda_adv=0.0):
    cfg = small_config()
    return ScMambaModule(
        {"rna": 60, "atac": 200},
        {"rna": np.random.default_rng(0).permutation(60), "atac": np.arange(200)},
        n_batch=n_batch,
        n_latent=cfg["n_latent"],
        d_model=cfg["d_model"],
        n_layers={"rna": 1, "atac": 1},
        patch_size={"rna": 16, "atac": 64},
        d_state=cfg["d_state"],
        headdim=cfg["headdim"],
        expand=2,
        mlp_hidden=64,
        head_hidden=cfg["head_hidden"],
        chunk_size=cfg["chunk_size"],
        dropout=0.0,
        feature_dropout={"rna": 0.0, "atac": 0.0},
        pooling=pooling,
        projection="per_region",
        bin_size={"atac": 8},
        n_bins=51,
        temperature_init=0.07,
        learn_temperature=True,
        lambda_con=0.1,
        lambda_sim=0.1,
        lambda_rec=lambda_rec,
        lambda_adv=lambda_adv,
        batch_negatives=batch_negatives,
        use_fused_kernels=False,
    )


def minibatch(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    rna = torch.poisson(torch.rand(n, 60, generator=g) * 2)
    atac = (torch.rand(n, 200, generator=g) < 0.1).float()
    rna[:, 0] += 1
    atac[:, 0] = 1
    batch = (torch.arange(n) % 3).view(-1, 1)
    return {REGISTRY_KEYS.X_KEY: rna, REGISTRY_KEYS.ATAC_X_KEY: atac, REGISTRY_KEYS.BATCH_KEY: batch}


def test_sparse_and_dense_minibatches_embed_alike():
    module = tiny_module().eval()
    t = minibatch()
    dense = module.inference(**module._get_inference_input(t))
    sparse_t = {k: (v.to_sparse_csr() if v.shape[1] > 1 else v) for k, v in t.items()}
    sp = module.inference(**module._get_inference_input(sparse_t))
    for m in ("rna", "atac"):
        assert torch.allclose(dense[f"z_{m}"], sp[f"z_{m}"], atol=1e-6)
        assert torch.allclose(dense[f"z_{m}"].norm(dim=-1), torch.ones(24), atol=1e-5)


def test_loss_has_self_and_cross_reconstruction_and_weights_them():
    module = tiny_module().train()
    t = minibatch()
    _, _, out = module(t)
    keys = {k for k in out.extra_metrics if k.startswith("rec_")}
    assert keys == {"rec_rna_to_rna", "rec_atac_to_rna", "rec_rna_to_atac", "rec_atac_to_atac"}
    m = out.extra_metrics
    expected = (
        0.1 * m["infonce"] + 0.1 * m["cosine_loss"]
        + (m["rec_rna_to_rna"] + m["rec_atac_to_rna"]) / 2 + (m["rec_rna_to_atac"] + m["rec_atac_to_atac"]) / 2
    )  # fmt: skip
    assert torch.allclose(out.loss, expected, atol=1e-5)
    without = tiny_module(lambda_rec=0.0)
    assert len(without.decoders) == 0
    _, _, out0 = without(t)
    assert not any(k.startswith("rec_") for k in out0.extra_metrics)


def test_adversarial_term_per_modality_and_only_with_batches():
    t = minibatch()
    module = tiny_module(lambda_adv=0.5).train()
    _, _, out = module(t)
    m = out.extra_metrics
    assert {"batch_adv_rna", "batch_adv_atac"} <= set(m)
    without = tiny_module(lambda_adv=0.0).train()
    without.load_state_dict(module.state_dict(), strict=False)  # same encoders and decoders, no classifier
    _, _, out0 = without(t)
    assert not any(k.startswith("batch_adv") for k in out0.extra_metrics)
    torch.testing.assert_close(out.loss, out0.loss + 0.5 * (m["batch_adv_rna"] + m["batch_adv_atac"]) / 2)
    assert not hasattr(tiny_module(lambda_adv=0.5, n_batch=1), "batch_classifier")  # one batch: nothing to remove


def test_reconstruction_gradients_reach_both_encoders():
    module = tiny_module().train()
    module.lambda_con = module.lambda_sim = 0.0
    _, _, out = module(minibatch())
    out.loss.backward()
    for m in ("rna", "atac"):
        grad = module.encoders[m].tokenizer.proj_weight.grad
        assert grad is not None and float(grad.abs().sum()) > 0


def test_batch_negatives_contrast_within_batches_only():
    torch.manual_seed(0)
    z_a, z_b = F.normalize(torch.randn(12, 5), dim=-1), F.normalize(torch.randn(12, 5), dim=-1)
    groups = torch.arange(12) % 3
    same = groups[:, None] == groups[None, :]
    masked = contrastive_loss(z_a, z_b, torch.tensor(10.0), same_group=same)["infonce"]
    per_group = torch.stack([
        contrastive_loss(z_a[groups == g], z_b[groups == g], torch.tensor(10.0))["infonce"] for g in range(3)
    ])  # fmt: skip
    assert torch.allclose(masked, per_group.mean(), atol=1e-6)
    module = tiny_module(batch_negatives=True).train()
    _, _, out = module(minibatch())
    assert torch.isfinite(out.loss)


def test_blocks_start_as_identity():
    block = MambaBlock(32, 64, dropout=0.0, d_state=16, headdim=16, expand=2, chunk_size=16)
    x = torch.randn(3, 7, 32)
    assert torch.equal(block(x), x)
    module = tiny_module()
    x = SparseRows.from_tensor(torch.poisson(torch.rand(4, 60) * 2) + (torch.arange(60) == 0).float())
    enc = module.encoders["rna"]
    direct = enc.norm_f(enc.tokenizer(x))
    assert torch.allclose(enc.tokens(x), direct)


def test_flatten_pooling_keeps_every_region():
    """With flatten pooling, changing one region's token changes the embedding; mean pooling of a swap does not."""
    torch.manual_seed(0)
    for pooling, differs in (("flatten", True), ("mean", False)):
        enc = tiny_module(pooling=pooling).encoders["rna"].eval()
        h = torch.randn(2, enc.tokenizer.n_patches, 32)
        swapped = h[:, torch.roll(torch.arange(h.shape[1]), 1)]
        a, b = enc.out(enc.pool_and_head(h)), enc.out(enc.pool_and_head(swapped))
        assert (not torch.allclose(a, b, atol=1e-5)) == differs


def test_mosaic_masks_restrict_each_term_to_the_cells_measured():
    """Cells measured in one modality: no contrastive pair, and only their own modality's reconstruction."""
    module = tiny_module().eval()
    t = minibatch(n=30)
    observed_rna = torch.ones(30, 1, dtype=torch.bool)
    observed_atac = torch.ones(30, 1, dtype=torch.bool)
    observed_rna[20:25] = False  # ATAC-only cells
    observed_atac[25:] = False  # RNA-only cells
    mosaic = {**t, "observed_rna": observed_rna, "observed_atac": observed_atac}
    _, _, out = module(mosaic)
    paired = slice(0, 20)
    sub = {k: v[paired] for k, v in t.items()}
    _, _, out_paired = module(sub)
    # the contrastive terms see the 20 paired cells only
    assert torch.allclose(out.extra_metrics["infonce"], out_paired.extra_metrics["infonce"], atol=1e-5)
    # RNA from the RNA embedding: the 25 cells with RNA; RNA from the ATAC embedding: the 20 paired ones
    rna_cells = {k: v[torch.cat([torch.arange(20), torch.arange(25, 30)])] for k, v in t.items()}
    _, _, out_rna = module(rna_cells)
    assert torch.allclose(out.extra_metrics["rec_rna_to_rna"], out_rna.extra_metrics["rec_rna_to_rna"], atol=1e-5)
    assert torch.allclose(out.extra_metrics["rec_atac_to_rna"], out_paired.extra_metrics["rec_atac_to_rna"], atol=1e-5)
    # a minibatch without any pair still trains the reconstruction terms
    only_rna = {**t, "observed_rna": torch.ones(30, 1, dtype=torch.bool),
                "observed_atac": torch.zeros(30, 1, dtype=torch.bool)}  # fmt: skip
    _, _, out_none = module.train()(only_rna)
    assert float(out_none.extra_metrics["infonce"]) == 0.0
    assert set(k for k in out_none.extra_metrics if k.startswith("rec_")) == {"rec_rna_to_rna"}
    out_none.loss.backward()
