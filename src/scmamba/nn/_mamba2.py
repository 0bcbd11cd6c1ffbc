"""Mamba2 mixer layer with the parameter names and shapes of ``mamba_ssm.modules.mamba2.Mamba2``.

Keeping the names (``in_proj``, ``conv1d``, ``dt_bias``, ``A_log``, ``D``, ``norm``, ``out_proj``) and shapes
identical means a state dict moves between this pure-PyTorch layer (CPU, any GPU) and mamba-ssm's CUDA layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._causal_conv import CausalDepthwiseConv
from ._ssd import ssd

__all__ = ["Mamba2", "RMSNormGated"]


class RMSNormGated(nn.Module):
    """RMSNorm of ``x * silu(z)`` per group of channels (``norm_before_gate=False``), as in mamba-ssm.

    Parameters
    ----------
    hidden_size
        Number of channels.
    eps
        Numerical floor of the RMS.
    group_size
        Channels normalised together (``hidden_size // ngroups`` in Mamba2).
    norm_before_gate
        Normalise ``x`` first and gate afterwards.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5, group_size: int | None = None, norm_before_gate=False):
        super().__init__()
        self.eps = eps
        self.group_size = group_size or hidden_size
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def _rms(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        xg = x.float().view(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        xg = xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + self.eps)
        return xg.view(shape)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise ``x`` (``(..., hidden_size)``), gated by ``silu(z)`` when ``z`` is given; returns ``x``'s shape."""
        if z is not None and not self.norm_before_gate:
            x = x * F.silu(z)
        y = self._rms(x) * self.weight.float()
        if z is not None and self.norm_before_gate:
            y = y * F.silu(z.float())
        return y.to(x.dtype)


class Mamba2(nn.Module):
    """Mamba2 (SSD) sequence mixer.

    Parameters
    ----------
    d_model
        Token width.
    d_state
        SSM state size per head.
    d_conv
        Width of the causal depthwise convolution.
    expand
        Inner width is ``expand * d_model``.
    headdim
        Channels per SSM head; ``expand * d_model`` must be divisible by it.
    ngroups
        Groups of heads sharing B and C.
    A_init_range
        Uniform range of the initial ``-A``.
    dt_min, dt_max, dt_init_floor
        Log-uniform initialisation of the step size.
    dt_limit
        Clamp of the step size after softplus.
    bias, conv_bias
        Biases of the projections and of the convolution.
    chunk_size
        Tokens per SSD chunk.
    use_fused_kernels
        ``None``: mamba-ssm's fused SSD kernel when on CUDA and importable; ``False``: always the PyTorch path.
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int,
        expand: int,
        headdim: int,
        chunk_size: int,
        d_conv: int = 4,
        ngroups: int = 1,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_limit: tuple[float, float] = (0.0, float("inf")),
        bias: bool = False,
        conv_bias: bool = True,
        use_fused_kernels: bool | None = None,
    ):
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = self.d_ssm = expand * d_model
        if self.d_ssm % headdim:
            raise ValueError(f"expand * d_model = {self.d_ssm} must be divisible by headdim = {headdim}.")
        self.headdim = headdim
        self.nheads = self.d_ssm // headdim
        if self.nheads % ngroups:
            raise ValueError(f"The number of heads ({self.nheads}) must be divisible by ngroups ({ngroups}).")
        self.ngroups = ngroups
        self.dt_limit = dt_limit
        self.chunk_size = chunk_size
        self.use_fused_kernels = use_fused_kernels

        d_in_proj = 2 * self.d_ssm + 2 * ngroups * d_state + self.nheads  # [z, x, B, C, dt]
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=bias)
        conv_dim = self.d_ssm + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(
            conv_dim, conv_dim, kernel_size=d_conv, groups=conv_dim, padding=d_conv - 1, bias=conv_bias
        )
        self.act = nn.SiLU()

        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        A = torch.empty(self.nheads).uniform_(*A_init_range)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True
        self.norm = RMSNormGated(self.d_ssm, eps=1e-5, group_size=self.d_ssm // ngroups, norm_before_gate=False)
        self.out_proj = nn.Linear(self.d_ssm, d_model, bias=bias)

    def _causal_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Causal depthwise convolution over the sequence of ``x`` (batch, length, channels).

        Uses ``conv1d``'s own weights through :class:`~scmamba.nn._causal_conv.CausalDepthwiseConv` (shifted
        multiply-adds with a hand-written backward): on CPU, oneDNN's depthwise convolution (and its backward) was
        the slowest op of a training step, several times slower.
        """
        return CausalDepthwiseConv.apply(x, self.conv1d.weight.squeeze(1), self.conv1d.bias)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Mix a ``(batch, length, d_model)`` sequence causally; returns the same shape."""
        batch, length, _ = u.shape
        zxbcdt = self.in_proj(u)
        z, xBC, dt = torch.split(
            zxbcdt, [self.d_ssm, self.d_ssm + 2 * self.ngroups * self.d_state, self.nheads], dim=-1
        )
        xBC = self.act(self._causal_conv(xBC))
        x, B, C = torch.split(xBC, [self.d_ssm, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        dt = F.softplus(dt.float() + self.dt_bias.float())
        if self.dt_limit != (0.0, float("inf")):
            dt = dt.clamp(*self.dt_limit)
        A = -torch.exp(self.A_log.float())
        y = ssd(
            x.view(batch, length, self.nheads, self.headdim),
            dt,
            A,
            B.view(batch, length, self.ngroups, self.d_state),
            C.view(batch, length, self.ngroups, self.d_state),
            D=self.D,
            chunk_size=self.chunk_size,
            use_fused=self.use_fused_kernels,
        )
        y = self.norm(y.reshape(batch, length, self.d_ssm), z)
        return self.out_proj(y)
