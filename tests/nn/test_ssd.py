"""The chunked SSD scan and the Mamba2 layer against a plain sequential recurrence."""

import pytest
import torch

from scmamba.nn import Mamba2, MambaEncoder, mamba_ssm_available, ssd, ssd_chunked, ssd_sequential


def _inputs(b=2, length=70, h=4, p=8, g=1, n=6, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, h, p, dtype=dtype, generator=gen)
    dt = torch.rand(b, length, h, dtype=dtype, generator=gen) * 0.5 + 0.01
    A = -(torch.rand(h, dtype=dtype, generator=gen) * 4 + 0.1)
    B = torch.randn(b, length, g, n, dtype=dtype, generator=gen)
    C = torch.randn(b, length, g, n, dtype=dtype, generator=gen)
    D = torch.randn(h, dtype=dtype, generator=gen)
    return x, dt, A, B, C, D


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(params=["direct", "factorised"], autouse=True)
def intra_chunk_form(request, monkeypatch):
    """Run every test with both forms of the intra-chunk decay matrix (the threshold picks one per call)."""
    force_form(monkeypatch, request.param)
    return request.param


def force_form(monkeypatch, form: str) -> None:
    """Make ssd_chunked take one intra-chunk form whatever the decay (factorisation limit 0 or infinite)."""
    import scmamba.nn._ssd as ssd_module

    limit = 0.0 if form == "direct" else float("inf")
    monkeypatch.setattr(ssd_module, "_FACTOR_MAX_EXPONENT", dict.fromkeys(ssd_module._FACTOR_MAX_EXPONENT, limit))


def _encoder_kwargs(**kwargs):
    """Every MambaEncoder argument (the package's defaults live on SCMAMBA only), small sizes for tests."""
    base = dict(
        patch_size=32, d_model=16, n_layers=1, mlp_hidden=32, head_hidden=32, dropout=0.0, pooling="mean",
        projection="shared", bin_size=None, d_state=8, expand=2, headdim=8, chunk_size=8,
    )  # fmt: skip
    return {**base, **kwargs}


def test_default_threshold_picks_the_factorised_form_only_for_mild_decay(monkeypatch):
    import scmamba.nn._ssd as ssd_module

    monkeypatch.undo()  # the module's own limits, not the fixture's
    calls = []
    real = ssd_module._segsum_exp
    monkeypatch.setattr(ssd_module, "_segsum_exp", lambda a: calls.append(a.shape) or real(a))
    x, dt, A, B, C, D = _inputs(length=64)
    x, dt, A, B, C, D = (t.float() for t in (x, dt, A, B, C, D))  # float32: factorised up to a decay of e^-120
    for scale, direct in ((1.0, False), (10.0, True)):  # chunk decays up to ~60, and up to ~600
        calls.clear()
        y = ssd_chunked(x, dt * scale, A, B, C, D, chunk_size=32)
        assert _rel(y, ssd_sequential(x, dt * scale, A, B, C, D)) < 1e-4
        assert (len(calls) == 2) == direct  # the direct form builds the T x T decay matrix (plus the chunk one)


@pytest.mark.parametrize(
    ("length", "chunk", "groups"),
    [(64, 16, 1), (70, 16, 1), (5, 16, 1), (97, 32, 2), (1, 8, 1), (128, 128, 4)],
)
def test_chunked_equals_sequential_float64(length, chunk, groups):
    x, dt, A, B, C, D = _inputs(length=length, g=groups)
    y_ref = ssd_sequential(x, dt, A, B, C, D)
    y = ssd_chunked(x, dt, A, B, C, D, chunk_size=chunk)
    assert y.shape == x.shape
    assert _rel(y, y_ref) < 1e-6


def test_chunked_without_D():
    x, dt, A, B, C, _ = _inputs(length=45)
    y_ref = ssd_sequential(x, dt, A, B, C, None)
    y = ssd_chunked(x, dt, A, B, C, None, chunk_size=16)
    assert _rel(y, y_ref) < 1e-6


def test_float32_close_to_float64_reference():
    x, dt, A, B, C, D = _inputs(length=200)
    y_ref = ssd_sequential(x, dt, A, B, C, D)
    y = ssd_chunked(*(t.float() for t in (x, dt, A, B, C, D)), chunk_size=64)
    assert _rel(y.double(), y_ref) < 1e-4


def test_gradients_match_sequential():
    x, dt, A, B, C, D = (t.clone().requires_grad_(True) for t in _inputs(length=37, b=1))
    w = torch.randn(1, 37, 4, 8, dtype=torch.float64)
    (ssd_sequential(x, dt, A, B, C, D) * w).sum().backward()
    ref = [t.grad.clone() for t in (x, dt, A, B, C, D)]
    for t in (x, dt, A, B, C, D):
        t.grad = None
    (ssd_chunked(x, dt, A, B, C, D, chunk_size=8) * w).sum().backward()
    for got, want in zip((x.grad, dt.grad, A.grad, B.grad, C.grad, D.grad), ref, strict=True):
        assert torch.isfinite(got).all()
        assert _rel(got, want) < 1e-6


@pytest.mark.parametrize(("length", "chunk", "groups"), [(24, 8, 1), (21, 8, 2), (5, 16, 1)])
def test_hand_written_backward_passes_gradcheck(length, chunk, groups, intra_chunk_form):
    """Finite differences of the factorised chunked SSD, which has its own backward (chunks, padding, groups, D)."""
    from scmamba.nn._ssd_function import SSDChunkedFunction

    if intra_chunk_form == "direct":
        pytest.skip("calls the factorised Function directly; one run is enough")

    inputs = tuple(t.clone().requires_grad_(True) for t in _inputs(b=2, length=length, p=3, n=3, g=groups))
    assert torch.autograd.gradcheck(lambda *a: SSDChunkedFunction.apply(*a, chunk), inputs, fast_mode=True)


def test_hand_written_path_is_used_for_training_and_matches_autograd_path(intra_chunk_form, monkeypatch):
    """The factorised form runs the hand-written Function; the direct form, plain autograd; both agree."""
    x, dt, A, B, C, D = (t.clone().requires_grad_(True) for t in _inputs(length=50))
    y = ssd_chunked(x, dt, A, B, C, D, chunk_size=16)
    force_form(monkeypatch, "direct")
    y_auto = ssd_chunked(x, dt, A, B, C, D, chunk_size=16)

    def graph(fn):
        return {type(fn).__name__} | set().union(*(graph(f) for f, _ in fn.next_functions if f is not None))

    uses_function = "SSDChunkedFunctionBackward" in graph(y.grad_fn)
    assert uses_function == (intra_chunk_form == "factorised")
    assert "SSDChunkedFunctionBackward" not in graph(y_auto.grad_fn)
    w = torch.randn_like(y)
    g1 = torch.autograd.grad((y * w).sum(), (x, dt, A, B, C, D))
    g2 = torch.autograd.grad((y_auto * w).sum(), (x, dt, A, B, C, D))
    assert _rel(y, y_auto) < 1e-12
    assert all(_rel(a, b) < 1e-10 for a, b in zip(g1, g2, strict=True))


def test_bf16_autocast_gradients_stay_close():
    torch.manual_seed(0)
    layer = Mamba2(32, d_state=8, expand=2, headdim=16, chunk_size=8)
    u = torch.randn(2, 40, 32)
    grads = []
    for enabled in (False, True):
        layer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            y = layer(u)
        y.float().pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in layer.parameters()]))
    assert torch.isfinite(grads[1]).all()
    assert _rel(grads[1], grads[0]) < 0.05


def test_dispatch_without_cuda_uses_torch_path():
    x, dt, A, B, C, D = _inputs(length=20)
    assert torch.equal(ssd(x, dt, A, B, C, D, chunk_size=8), ssd_chunked(x, dt, A, B, C, D, chunk_size=8))
    with pytest.raises(RuntimeError, match="mamba-ssm"):
        ssd(x, dt, A, B, C, D, use_fused=True)


def test_mamba2_parameter_names_and_shapes_match_mamba_ssm():
    # mamba_ssm.modules.mamba2.Mamba2(d_model=64, d_state=16, headdim=32, expand=2, ngroups=1, d_conv=4):
    # d_inner 128, nheads 4, in_proj out = 2*128 + 2*1*16 + 4, conv channels = 128 + 2*16.
    layer = Mamba2(64, d_state=16, headdim=32, expand=2, chunk_size=64, ngroups=1, d_conv=4)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {
        "dt_bias": (4,),
        "A_log": (4,),
        "D": (4,),
        "in_proj.weight": (292, 64),
        "conv1d.weight": (160, 1, 4),
        "conv1d.bias": (160,),
        "norm.weight": (128,),
        "out_proj.weight": (64, 128),
    }


def test_mamba2_layer_is_causal_and_matches_sequential_scan(monkeypatch):
    torch.manual_seed(0)
    layer = Mamba2(32, d_state=8, expand=2, headdim=16, chunk_size=8).double()
    u = torch.randn(2, 29, 32, dtype=torch.float64)
    y = layer(u)
    u2 = u.clone()
    u2[:, 20:] += 1.0
    y2 = layer(u2)
    assert torch.allclose(y[:, :20], y2[:, :20])
    assert not torch.allclose(y[:, 20:], y2[:, 20:])

    # the same layer computed with the sequential recurrence instead of the chunked scan
    import scmamba.nn._mamba2 as mamba_mod

    monkeypatch.setattr(
        mamba_mod, "ssd", lambda x, dt, A, B, C, D=None, chunk_size=0, use_fused=None: ssd_sequential(x, dt, A, B, C, D)
    )
    assert _rel(layer(u), y) < 1e-6
    # the manual causal depthwise convolution equals nn.Conv1d
    xbc = torch.randn(2, 29, layer.conv1d.in_channels, dtype=torch.float64)
    ref = layer.conv1d(xbc.transpose(1, 2))[..., :29].transpose(1, 2)
    assert torch.allclose(layer._causal_conv(xbc), ref)


def test_encoder_shapes_padding_and_gradients():
    enc = MambaEncoder(1000, 16, **_encoder_kwargs(patch_size=64, d_model=32, n_layers=2, d_state=8, headdim=16))
    assert enc.tokenizer.n_patches == 16  # ceil(1000 / 64)
    x = torch.rand(5, 1000)
    z = enc(x)
    assert z.shape == (5, 16)
    z.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_encoder_pools_the_tokens_it_says(pooling):
    """The head reads the last token (``'last'``) or the mean of all tokens (``'mean'``), and the two differ."""
    torch.manual_seed(0)
    enc = MambaEncoder(
        300, 8, **_encoder_kwargs(patch_size=32, d_model=16, n_layers=1, d_state=8, headdim=8, pooling=pooling)
    ).eval()
    for block in enc.blocks:  # blocks start as the identity (zero-initialised residual branches): perturb them
        torch.nn.init.normal_(block.mixer.out_proj.weight, std=0.1)
    x = torch.poisson(torch.full((6, 300), 0.5))
    with torch.no_grad():
        h = enc.tokenizer(x)
        for block in enc.blocks:
            h = block(h)
        h = enc.norm_f(h)
        last, mean = enc.out(enc.head(h[:, -1])), enc.out(enc.head(h.mean(dim=1)))
        z = enc(x)
    assert not torch.allclose(last, mean, atol=1e-4)
    torch.testing.assert_close(z, last if pooling == "last" else mean)


def test_bf16_autocast_runs_and_stays_close():
    torch.manual_seed(0)
    layer = Mamba2(32, d_state=8, expand=2, headdim=16, chunk_size=8)
    u = torch.randn(2, 40, 32)
    y = layer(u)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = layer(u)
    assert torch.isfinite(yb).all()
    assert _rel(yb.float(), y) < 0.05


@pytest.mark.skipif(not (torch.cuda.is_available() and mamba_ssm_available()), reason="needs CUDA and mamba-ssm")
def test_fused_kernel_agrees_with_torch_path():  # pragma: no cover - runs only on a GPU machine
    torch.manual_seed(0)
    layer = Mamba2(64, d_state=16, expand=2, headdim=32, chunk_size=64).cuda()
    u = torch.randn(4, 100, 64, device="cuda")
    layer.use_fused_kernels = False
    y_torch = layer(u)
    layer.use_fused_kernels = True
    y_fused = layer(u)
    assert _rel(y_fused, y_torch) < 1e-3


@pytest.mark.parametrize("projection", ["shared", "per_region", "per_region+bins"])
def test_sparse_patch_embedding_equals_dense_patching(projection):
    import torch.nn.functional as F

    from scmamba.nn import PatchEmbedding

    torch.manual_seed(0)
    x = (torch.rand(7, 1000) < 0.05).float() * torch.rand(7, 1000)
    bin_size = 3 if projection == "per_region+bins" else None
    tok = PatchEmbedding(1000, 64, 16, dropout=0.0, projection=projection.split("+")[0], bin_size=bin_size)
    patches = F.pad(x, (0, 16 * 64 - 1000)).view(7, 16, 64)  # ceil(1000 / 64) = 16 patches, zero-padded
    if projection == "shared":
        ref = tok.proj(patches)
    else:
        weight = tok.proj_weight
        if bin_size:  # bins of 3 features share a vector (334 bins, the last one partial); non-zero, to be seen
            torch.nn.init.normal_(tok.bin_weight)
            weight = weight + tok.bin_weight.repeat_interleave(bin_size, dim=0)[:1000]
        weight = F.pad(weight, (0, 0, 0, 24)).view(16, 64, 16)
        ref = torch.einsum("ncp,cpd->ncd", patches, weight) + tok.proj_bias
    out = tok(x)
    assert torch.allclose(out, ref + tok.pos_embedding, atol=1e-6)
    # the gradients of every parameter match the dense computation's
    cotangent = torch.randn_like(out)
    params = [p for p in tok.parameters() if p.requires_grad]
    grads = torch.autograd.grad((out * cotangent).sum(), params, retain_graph=True)
    ref_grads = torch.autograd.grad(((ref + tok.pos_embedding) * cotangent).sum(), params, allow_unused=True)
    for p, g, r in zip(params, grads, ref_grads, strict=True):
        assert r is not None and torch.allclose(g, r, atol=1e-5), p.shape
    with torch.no_grad():
        live = tok(x)
        with tok.frozen():  # the projection is built once for the passes inside; the same tokens
            assert tok._frozen_weight is not None
            assert torch.equal(tok(x), live)
        assert tok._frozen_weight is None
    if projection != "shared":  # after the context the live weights count again
        with torch.no_grad():
            tok.proj_weight.add_(1.0)
        assert not torch.allclose(tok(x), live)


def test_bin_size_needs_per_region_projection():
    from scmamba.nn import PatchEmbedding

    with pytest.raises(ValueError, match="per_region"):
        PatchEmbedding(100, 10, 8, dropout=0.0, projection="shared", bin_size=4)
    with pytest.raises(ValueError, match="positive"):
        PatchEmbedding(100, 10, 8, dropout=0.0, projection="per_region", bin_size=0)


@pytest.mark.parametrize("length", [1, 3, 12])
def test_causal_conv_equals_conv1d_and_passes_gradcheck(length, intra_chunk_form):
    """Mamba2's hand-written causal depthwise convolution against nn.Conv1d, and its backward by finite differences."""
    from scmamba.nn._causal_conv import CausalDepthwiseConv

    if intra_chunk_form == "direct":
        pytest.skip("independent of the SSD form; one run is enough")
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(2, length, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    conv = torch.nn.Conv1d(5, 5, kernel_size=4, groups=5, padding=3).double()
    ref = conv(x.transpose(1, 2))[..., :length].transpose(1, 2)
    w = conv.weight.squeeze(1)
    assert _rel(CausalDepthwiseConv.apply(x, w, conv.bias), ref) < 1e-12
    assert torch.autograd.gradcheck(CausalDepthwiseConv.apply, (x, w, conv.bias), fast_mode=True)
    assert torch.autograd.gradcheck(CausalDepthwiseConv.apply, (x, w, None), fast_mode=True)
