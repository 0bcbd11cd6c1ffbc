"""Factorised chunked SSD with a hand-written backward pass (the CPU training path).

Written by hand because nothing else does it on CPU: mamba-ssm's fused kernels need CUDA and Triton, and
autograd through :func:`~scmamba.nn.ssd_chunked` spends more time in elementwise passes (decay products,
layout copies, their gradients) than in the matmuls that carry the FLOPs. Here every quantity the backward needs
is a matmul or one elementwise pass over the inputs, and the decays are folded into small tensors:

With ``a`` the cumulative log-decay inside a chunk and ``m`` half the chunk's total decay (a constant: the result
does not depend on it, it only keeps exponents within ``+-limit``; see ``_FACTOR_MAX_EXPONENT``)::

    v   = x * dt * exp(m - a)                    # one pass over x
    M   = tril(C B^T)                            # (T x T) per chunk, shared by the heads of a group
    S'  = v^T B                                  # chunk states S = exp(a_end - m) S'
    E'  = exp(m) * state passing of S            # the factors folded into the (c x c) decay matrix
    y   = (M v + C E') * exp(a - m)              # one baddbmm, one pass

Backward, with ``G`` the output gradient and ``gw = G * exp(a - m)``::

    dE' = gw^T C;  dS', da_end from the state passing (a reverse scan over chunks)
    dM  = tril(gw v^T);  dC = dM B + gw E'^T;  dB = dM^T C + v dS';  dv = M^T gw + B dS'^T
    dx  = dv * dt * exp(m - a);  da = sum_p(G y) - sum_p(dv v) (+ da_end);  then through the cumsum to dt and A

It computes exactly what :func:`~scmamba.nn.ssd_chunked` computes (tests compare both, and gradients against
:func:`~scmamba.nn.ssd_sequential` and finite differences).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _segsum_exp(a: torch.Tensor) -> torch.Tensor:
    """``exp(sum_{j < s <= i} a_s)`` for ``i >= j`` and 0 above the diagonal; ``a`` is ``(..., T)``.

    Uses differences of one cumulative sum: with ``a <= 0`` and chunks of tens of tokens this loses no useful
    precision in float32 and costs one ``T x T`` subtraction instead of a masked ``T x T`` cumsum (the segment-sum
    form is 3x slower on CPU here).
    """
    cs = a.cumsum(dim=-1)
    T = a.shape[-1]
    lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril()
    return torch.exp((cs[..., :, None] - cs[..., None, :]).masked_fill(~lower, float("-inf")))


def _bmm(x: torch.Tensor, y: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """Batched ``x @ y (+ add)`` over any leading dims; ``add`` is overwritten with the result."""
    lead = x.shape[:-2]
    x3, y3 = x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:])
    if add is None:
        out = torch.bmm(x3, y3)
    else:  # accumulate in place into ``add`` (a fresh matmul result): baddbmm would copy it first
        out = add.reshape(-1, *add.shape[-2:]).baddbmm_(x3, y3)
    return out.view(*lead, *out.shape[-2:])


def _decays(dt: torch.Tensor, A: torch.Tensor, b: int, c: int, T: int, g: int, acc: torch.dtype):
    """Step sizes ``(b, g, c, T, hg)``, ``A`` as ``(1, g, 1, 1, hg)``, cumulative log-decay ``a`` and ``m``."""
    hg = dt.shape[-1] // g
    dtv = dt.to(acc).view(b, c, T, g, hg).permute(0, 3, 1, 2, 4)
    Ag = A.to(acc).view(1, g, 1, 1, hg)
    a = (dtv * Ag).cumsum(dim=3)
    mid = a[:, :, :, -1:] / 2
    return dtv, Ag, a, mid


def _chunk_ratios(a_end: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
    """``r_k = exp(m_k + a_end[k-1] - m_{k-1})`` for ``k >= 1`` (``r_0`` unused), ``(b, g, c, hg)``, all ``<= 1``."""
    r = torch.zeros_like(a_end)
    r[:, :, 1:] = torch.exp(mid[:, :, 1:] + a_end[:, :, :-1] - mid[:, :, :-1])
    return r


def _pass_states(Sp: torch.Tensor, r: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
    """Entering states ``E'_k = r_k (E'_{k-1} + S'_{k-1})``, ``E'_0 = 0``, from chunk states ``S'``.

    ``Sp`` is ``(b, g, c, hg, p, n)``; the recursion runs over the ``c`` chunks in ``acc`` (float32 or float64),
    one elementwise step per chunk: O(c) work, where the quadratic (c x c) form costs a matmul with an inner
    dimension of ``c`` (slow) plus layout copies. ``E' = exp(m) E`` and ``S = exp(a_end - m) S'`` in the
    notation of the module docstring, which is the recursion of the true states ``H_k = exp(a_end) H_{k-1} + S``.
    """
    E = torch.empty(Sp.shape, dtype=acc, device=Sp.device)
    E[:, :, 0] = 0
    rr = r.to(acc)[..., None, None]
    for k in range(1, Sp.shape[2]):
        torch.mul(E[:, :, k - 1] + Sp[:, :, k - 1], rr[:, :, k], out=E[:, :, k])
    return E


def _pass_states_backward(gE: torch.Tensor, E: torch.Tensor, r: torch.Tensor):
    """Gradients of :func:`_pass_states` for ``S'`` and ``a_end`` (``m`` held constant) from ``gE``."""
    gS = torch.empty_like(gE)
    gS[:, :, -1] = 0
    ga_end = torch.zeros(r.shape, dtype=gE.dtype, device=gE.device)
    rr = r.to(gE.dtype)[..., None, None]
    for k in range(gE.shape[2] - 1, 0, -1):
        total = gE[:, :, k] + gS[:, :, k]  # the gradient reaching E'_k: E'_{k+1} reads it through S' and E'
        torch.mul(total, rr[:, :, k], out=gS[:, :, k - 1])
        # d r_k / d a_end[k-1] = r_k and E'_k = r_k (...), so a_end[k-1] gets sum_{p,n} total * E'_k
        ga_end[:, :, k - 1] = (total * E[:, :, k]).sum(dim=(-1, -2))
    return gS, ga_end


def _padded_tokens(t: torch.Tensor, length_padded: int) -> torch.Tensor:
    """Zero-pad dim 1 (tokens) of a small tensor (``dt``, ``B``, ``C``) to ``length_padded``.

    ``dt = 0`` means no decay and no input, and causality keeps the earlier outputs exact.
    """
    pad = length_padded - t.shape[1]
    if not pad:
        return t
    return torch.cat([t, t.new_zeros(t.shape[0], pad, *t.shape[2:])], dim=1)


def _scaled_padded(t: torch.Tensor, scale: torch.Tensor, length_padded: int, g: int, dtype: torch.dtype):
    """``t * scale`` in the scan's token-major layout ``(b, g, length_padded, hg, p)``, zero past ``t``'s length.

    ``t`` is ``(b, L, h, p)``; ``scale`` is ``(b, g, length_padded, hg)``. One pass: the padding is written by the
    multiply itself instead of padding ``t`` first (an extra copy of the largest tensor, and of its gradient).
    """
    b, L, h, p = t.shape
    out = torch.empty(b, g, length_padded, h // g, p, dtype=dtype, device=t.device)
    torch.mul(t.view(b, L, g, h // g, p).transpose(1, 2), scale[:, :, :L, :, None], out=out[:, :, :L])
    out[:, :, L:] = 0
    return out


def _forward(x, dt, A, B, C, D, T: int, mdt: torch.dtype):
    """Forward: the output ``(b, L, h, p)``, and ``v``, ``w`` (before the output decay), ``M``, ``E'`` to save."""
    b, length, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    hg, c = h // g, -(-length // T)
    Lp = c * T
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    dtv, _, a, mid = _decays(_padded_tokens(dt, Lp), A, b, c, T, g, acc)
    s = (dtv * torch.exp(mid - a)).to(mdt)  # (b, g, c, T, hg)
    v = _scaled_padded(x, s.view(b, g, Lp, hg), Lp, g, mdt).view(b, g, c, T, hg * p)
    Bc = _padded_tokens(B, Lp).view(b, c, T, g, n).permute(0, 3, 1, 2, 4).to(mdt)  # (b, g, c, T, n)
    Cc = _padded_tokens(C, Lp).view(b, c, T, g, n).permute(0, 3, 1, 2, 4).to(mdt)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    M = _bmm(Cc, Bc.transpose(-1, -2)).masked_fill_(~causal, 0.0)  # (b, g, c, T, T)
    Sp = _bmm(v.transpose(-1, -2), Bc).view(b, g, c, hg, p, n)
    E = _pass_states(Sp, _chunk_ratios(a[:, :, :, -1], mid[:, :, :, 0]), acc)  # (b, g, c, hg, p, n) in acc
    Et = E.to(mdt).view(b, g, c, hg * p, n)
    w = _bmm(M, v, add=_bmm(Cc, Et.transpose(-1, -2)))  # (b, g, c, T, hg*p)
    e_out = torch.exp(a - mid).to(mdt).view(b, g, Lp, hg, 1)[:, :, :length]
    y = torch.empty(b, length, g, hg, p, dtype=mdt, device=x.device)
    torch.mul(w.view(b, g, Lp, hg, p)[:, :, :length], e_out, out=y.transpose(1, 2))
    if D is not None:
        y.addcmul_(x.view(b, length, g, hg, p), D.view(g, hg, 1).to(mdt))
    return y.view(b, length, h, p), v, w, M, E


def _backward(grad, x, dt, A, B, C, D, v, w, M, E, T: int):
    """Backward: gradients of ``x, dt, A, B, C, D`` (``None`` for ``D`` when it is ``None``)."""
    b, length, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    hg, c = h // g, -(-length // T)
    Lp = c * T
    mdt = M.dtype  # the matmul dtype of the forward (bfloat16 under autocast): used for every matmul here
    acc = E.dtype

    dtv, Ag, a, mid = _decays(_padded_tokens(dt, Lp), A, b, c, T, g, acc)
    e_in = torch.exp(mid - a)
    s = dtv * e_in  # (b, g, c, T, hg)
    Bc = _padded_tokens(B, Lp).view(b, c, T, g, n).permute(0, 3, 1, 2, 4).to(mdt)
    Cc = _padded_tokens(C, Lp).view(b, c, T, g, n).permute(0, 3, 1, 2, 4).to(mdt)
    G = grad.reshape(b, length, h, p)

    gw = _scaled_padded(G, torch.exp(a - mid).to(mdt).view(b, g, Lp, hg), Lp, g, mdt).view(b, g, c, T, hg * p)
    ga = (gw * w).view(b, g, c, T, hg, p).sum(-1, dtype=acc)  # from the output's exp(a - m) factor
    gE = _bmm(gw.transpose(-1, -2), Cc).view(b, g, c, hg, p, n)  # of E', in E's layout
    gSp, ga_end = _pass_states_backward(gE.to(acc), E, _chunk_ratios(a[:, :, :, -1], mid[:, :, :, 0]))
    gSp = gSp.to(mdt).view(b, g, c, hg * p, n)
    Et = E.to(mdt).view(b, g, c, hg * p, n)

    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    gM = _bmm(gw, v.transpose(-1, -2)).masked_fill_(~causal, 0.0)  # (b, g, c, T, T)
    gC = _bmm(gM, Bc, add=_bmm(gw, Et))
    gB = _bmm(gM.transpose(-1, -2), Cc, add=_bmm(v, gSp))
    gv = _bmm(M.transpose(-1, -2), gw, add=_bmm(Bc, gSp.transpose(-1, -2)))
    gv = gv.view(b, g, Lp, hg, p)[:, :, :length].transpose(1, 2)  # (b, L, g, hg, p), the input's token layout

    xv = x.view(b, length, g, hg, p)
    gs = F.pad((gv * xv).sum(-1, dtype=acc).transpose(1, 2), (0, 0, 0, Lp - length)).view(b, g, c, T, hg)
    gx = torch.empty(b, length, g, hg, p, dtype=x.dtype, device=x.device)
    torch.mul(gv, s.view(b, g, Lp, hg)[:, :, :length].transpose(1, 2)[..., None], out=gx)
    gD = None
    if D is not None:
        Gv = G.view(b, length, g, hg, p)
        gx.addcmul_(Gv, D.view(g, hg, 1).to(Gv.dtype))
        gD = (Gv * xv).sum(dim=(0, 1, 4), dtype=acc).reshape(h)
    ga = ga - gs * s
    ga[:, :, :, -1] += ga_end
    gdA = ga.flip(3).cumsum(3).flip(3)  # through a = cumsum(dt * A)
    gdt = gs * e_in + gdA * Ag
    gA = (gdA * dtv).sum(dim=(0, 2, 3)).reshape(h)

    def tokens(t):  # (b, g, c, T, ...) -> (b, L, g * ...), the unpadded input layout
        return t.permute(0, 2, 3, 1, *range(4, t.dim())).reshape(b, Lp, -1)[:, :length]

    return (
        gx.view(b, length, h, p),
        tokens(gdt),
        gA,
        tokens(gB).view(b, length, g, n),
        tokens(gC).view(b, length, g, n),
        gD,
    )


class SSDChunkedFunction(torch.autograd.Function):
    """``y = SSD(x, dt, A, B, C) + D x`` for mild chunk decays (any length; the last chunk is zero-padded).

    Inputs as in :func:`~scmamba.nn.ssd_sequential` (``D`` may be ``None``); ``T`` is the chunk size. Use through
    :func:`~scmamba.nn.ssd_chunked`, which checks the decay limit.
    """

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, T: int):
        dev = x.device.type
        # the matmul dtype: autocast's (e.g. bfloat16) when it is on, else the input's; chosen here and applied by
        # hand, so that forward and backward agree whatever autocast state the backward runs in
        autocast = torch.is_autocast_enabled(dev) and x.dtype != torch.float64
        mdt = torch.get_autocast_dtype(dev) if autocast else x.dtype
        with torch.autocast(dev, enabled=False):
            y, v, w, M, E = _forward(x, dt, A, B, C, D, T, mdt)
        ctx.save_for_backward(x, dt, A, B, C, D, v, w, M, E)
        ctx.T = T
        return y

    @staticmethod
    def backward(ctx, grad):
        x, dt, A, B, C, D, v, w, M, E = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):
            grads = _backward(grad, x, dt, A, B, C, D, v, w, M, E, ctx.T)
        inputs = (x, dt, A, B, C, D)
        return *(None if gr is None else gr.to(t.dtype) for gr, t in zip(grads, inputs, strict=True)), None
