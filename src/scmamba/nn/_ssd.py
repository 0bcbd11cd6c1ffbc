"""State space duality (SSD) scan of Mamba2: a chunked path in batched matmuls and a sequential reference.

The recurrence, per batch element and head ``h`` (state ``S`` of shape ``headdim x d_state``)::

    S_t = exp(dt_t * A_h) * S_{t-1} + dt_t * x_t B_t^T
    y_t = S_t C_t + D_h * x_t

``ssd_chunked`` computes it the SSD way: inside a chunk of ``T`` tokens with the quadratic ("attention-like")
form, between chunks by passing the chunk-final states. Everything is a batched matmul, which is what makes it
fast on CPU, where mamba-ssm's Triton kernels do not run. ``ssd_sequential`` is the plain recurrence, kept as
the reference the tests compare against. ``ssd`` dispatches to mamba-ssm's fused kernel on CUDA when it is
importable, else to ``ssd_chunked``.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

from ._ssd_function import SSDChunkedFunction, _segsum_exp

logger = logging.getLogger(__name__)

__all__ = ["mamba_ssm_available", "ssd", "ssd_chunked", "ssd_sequential"]


@functools.cache
def _mamba_chunk_scan_combined():
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:
        return None
    return mamba_chunk_scan_combined


def mamba_ssm_available() -> bool:
    """Whether mamba-ssm's fused SSD kernel can be imported (it needs a CUDA build)."""
    return _mamba_chunk_scan_combined() is not None


def _expand_groups(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(b, l, g, n) -> (b, l, h, n)``: heads share the B/C of their group."""
    g = t.shape[2]
    return t if g == n_heads else t.repeat_interleave(n_heads // g, dim=2)


def ssd_sequential(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reference SSD: the recurrence one token at a time (zero initial state).

    Parameters
    ----------
    x
        Inputs, ``(batch, length, heads, headdim)``.
    dt
        Positive step sizes (after softplus), ``(batch, length, heads)``.
    A
        Negative diagonal state matrix per head, ``(heads,)``.
    B, C
        Input and output projections, ``(batch, length, groups, d_state)``.
    D
        Skip connection per head, ``(heads,)``.

    Returns
    -------
    ``y`` with the shape of ``x``.
    """
    b, length, h, p = x.shape
    Bh, Ch = _expand_groups(B, h), _expand_groups(C, h)
    state = x.new_zeros(b, h, p, B.shape[-1])
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)  # (b, h)
        inp = (dt[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]  # (b, h, p, n)
        state = decay[..., None, None] * state + inp
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = torch.stack(ys, dim=1)
    if D is not None:
        y = y + x * D[:, None]
    return y


#: Largest exponent (per matmul dtype) of the factorised intra-chunk decays: a chunk whose total decay
#: ``-sum(dt * A)`` is below twice this is computed in the factorised form (see ``ssd_chunked``); the factors
#: ``exp(+-A_cum)`` of a chunk that decays more would overflow the dtype.
_FACTOR_MAX_EXPONENT = {torch.float16: 8.0, torch.bfloat16: 60.0, torch.float32: 60.0, torch.float64: 600.0}


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> torch.Tensor:
    """Chunked SSD scan in batched matmuls (same arguments and result as :func:`~scmamba.nn.ssd_sequential`).

    Decays (cumulative sums and their exponentials) and the state passing between chunks are computed in
    float32 (float64 stays float64), also under autocast; the large matmuls follow the input dtype. Mild chunk
    decays run the factorised form with a hand-written backward
    (:class:`~scmamba.nn._ssd_function.SSDChunkedFunction`); chunks that decay too much for it run the direct
    form under autograd.
    """
    b, length, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    hg = h // g
    T = min(chunk_size, length) if length > 0 else chunk_size
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    # total log-decay of each chunk: its size picks the factorised (mild decay) or the direct form
    c = -(-length // T)
    dA_tok = F.pad(dt.detach().to(acc) * A.detach().to(acc), (0, 0, 0, c * T - length))
    chunk_total = dA_tok.view(b, c, T, h).sum(dim=2)
    limit = 2 * _FACTOR_MAX_EXPONENT.get(x.dtype, 60.0)
    if length > 0 and float(-chunk_total.min()) < limit:
        # the common case: hand-written forward and backward, see _ssd_function
        return SSDChunkedFunction.apply(x, dt, A, B, C, D, T)

    pad = (-length) % T
    if pad:
        # Zero padding at the end: dt = 0 means no decay and no input, and causality keeps earlier outputs exact.
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        dt = F.pad(dt, (0, 0, 0, pad))
    c = x.shape[1] // T

    # Layout: chunks (c) and tokens (T) before heads (hg), so that the heads of a group, which share B and C, sit
    # side by side in the last dimension and every matmul below is one wide (T x T) @ (T x hg*p) or similar
    # instead of hg narrow ones.
    dA = (dt.to(acc) * A.to(acc)).view(b, c, T, g, hg).permute(0, 3, 1, 4, 2)  # (b, g, c, hg, T)
    A_cum = dA.cumsum(dim=-1)
    A_tok = A_cum.transpose(-1, -2)[..., None]  # (b, g, c, T, hg, 1)
    xdt = (x * dt[..., None].to(x.dtype)).view(b, c, T, g, hg, p).permute(0, 3, 1, 2, 4, 5)  # (b, g, c, T, hg, p)
    Bc = B.view(b, c, T, g, n).permute(0, 3, 1, 2, 4)  # (b, g, c, T, n)
    Cc = C.view(b, c, T, g, n).permute(0, 3, 1, 2, 4)
    cdt = xdt.dtype

    # 1. Within each chunk: y = (C B^T * L) x, the quadratic form, L[i, j] = exp(A_cum[i] - A_cum[j]) for j <= i.
    # This general ("direct") form serves chunks that decay too much for the factorised form; everything else
    # took the hand-written path above.
    CB = Cc @ Bc.transpose(-1, -2)  # (b, g, c, T, T), shared by the heads of a group
    L = _segsum_exp(dA).to(cdt)  # (b, g, c, hg, T, T)
    y = ((CB[:, :, :, None] * L) @ xdt.transpose(3, 4)).transpose(3, 4)  # (b, g, c, T, hg, p)

    # 2. State each chunk contributes at its end: sum_s exp(A_cum[-1] - A_cum[s]) x_s B_s^T, all heads at once.
    decay_to_end = torch.exp(A_tok[:, :, :, -1:] - A_tok).to(cdt)  # (b, g, c, T, hg, 1)
    x_end = (xdt * decay_to_end).reshape(b, g, c, T, hg * p)
    chunk_states = (x_end.transpose(-1, -2) @ Bc).view(b, g, c, hg, p * n)

    # 3. Pass states between chunks: the state entering chunk k sums chunk j<k states decayed over (j, k).
    with torch.autocast(device_type=x.device.type, enabled=False):
        chunk_decay = A_cum[..., -1].transpose(-1, -2)  # (b, g, hg, c)
        states = chunk_states.to(acc).transpose(2, 3)  # (b, g, hg, c, p * n)
        init = states.new_zeros(b, g, hg, 1, p * n)  # the zero state entering the first chunk
        states = torch.cat([init, states], dim=3)  # (b, g, hg, c + 1, p * n)
        # decay_chunk[i, j] = exp(sum of chunk decays j..i-1) over the c + 1 boundaries; a c+1 square matmul.
        decay_chunk = _segsum_exp(F.pad(chunk_decay, (1, 0)))  # (b, g, hg, c + 1, c + 1)
        states = decay_chunk @ states
        entering = states[:, :, :, :-1]

    # 4. What the entering state adds inside each chunk: C_t exp(A_cum[t]) S_in, all heads in one matmul.
    entering = entering.to(cdt).reshape(b, g, hg, c, p, n).permute(0, 1, 3, 5, 2, 4).reshape(b, g, c, n, hg * p)
    y = y + (Cc @ entering).view(b, g, c, T, hg, p) * torch.exp(A_tok).to(cdt)

    y = y.permute(0, 2, 3, 1, 4, 5).reshape(b, c * T, h, p)[:, :length]
    if D is not None:
        y = y + x[:, :length] * D[:, None].to(x.dtype)
    return y


def ssd(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    chunk_size: int = 64,
    use_fused: bool | None = None,
) -> torch.Tensor:
    """SSD scan: mamba-ssm's fused kernel on CUDA when available, else :func:`~scmamba.nn.ssd_chunked`.

    Parameters
    ----------
    x, dt, A, B, C, D
        See :func:`ssd_sequential`.
    chunk_size
        Tokens per chunk.
    use_fused
        ``None`` uses the fused kernel whenever the input is on CUDA and mamba-ssm imports; ``False`` never;
        ``True`` requires it (raises if unavailable).
    """
    kernel = _mamba_chunk_scan_combined() if (use_fused is not False and x.is_cuda) else None
    if use_fused and kernel is None:
        raise RuntimeError(
            "use_fused=True needs CUDA tensors and an importable mamba-ssm (pip install 'scmamba[cuda]')."
        )
    if kernel is not None:
        return kernel(x, dt, A, B, C, chunk_size, D=D)
    return ssd_chunked(x, dt, A, B, C, D=D, chunk_size=chunk_size)
