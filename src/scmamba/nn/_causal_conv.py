"""Causal depthwise convolution of Mamba2 with a hand-written backward (CPU training path).

Mamba2 convolves ``x, B, C`` along the sequence with a short (``d_conv = 4``) depthwise causal filter. On CPU,
oneDNN's depthwise ``conv1d`` and its backward were the slowest ops of a training step, and the same convolution
written as shifted multiply-adds under autograd pays for padding and for zero-filled slice gradients (a full copy
of the input per tap). Here each tap is one in-place ``addcmul_`` on a shifted view, forward and backward, so the
cost is ``d_conv`` passes over the input each way. The result equals ``nn.Conv1d(..., groups=channels,
padding=d_conv - 1)`` cut to the input length (tested against it, with finite differences).
"""

from __future__ import annotations

import torch


def _taps(weight: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """``(shift, weight)`` per tap: tap ``k`` of a width-``K`` filter multiplies ``x[t - (K - 1 - k)]``."""
    K = weight.shape[1]
    return [(K - 1 - k, weight[:, k]) for k in range(K)]


class CausalDepthwiseConv(torch.autograd.Function):
    """``y[:, t, c] = bias[c] + sum_k weight[c, k] * x[:, t - (K - 1 - k), c]`` (zero before the start).

    ``x`` is ``(batch, length, channels)``, ``weight`` ``(channels, K)`` (``conv1d.weight.squeeze(1)``), ``bias``
    ``(channels,)`` or ``None``. Computed in the promoted dtype of ``x`` and ``weight`` (as ``x * weight`` would be).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        dtype = torch.result_type(x, weight)
        xc, w = x.to(dtype), weight.to(dtype)
        length = x.shape[1]
        taps = _taps(w)
        shift, w0 = taps[-1]  # shift 0
        y = torch.mul(xc, w0) if bias is None else torch.addcmul(bias.to(dtype), xc, w0)
        for shift, wk in taps[:-1]:
            if shift < length:
                y[:, shift:].addcmul_(xc[:, : length - shift], wk)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        dtype = torch.result_type(x, weight)
        xc, w, g = x.to(dtype), weight.to(dtype), grad.to(dtype)
        length = x.shape[1]
        taps = _taps(w)
        gx = torch.mul(g, taps[-1][1])
        gw = torch.zeros_like(w)
        gw[:, -1] = (g * xc).sum(dim=(0, 1))
        for k, (shift, wk) in enumerate(taps[:-1]):
            if shift < length:
                gx[:, : length - shift].addcmul_(g[:, shift:], wk)
                gw[:, k] = (g[:, shift:] * xc[:, : length - shift]).sum(dim=(0, 1))
        gb = g.sum(dim=(0, 1)) if ctx.has_bias else None
        return gx.to(x.dtype), gw.to(weight.dtype), gb
