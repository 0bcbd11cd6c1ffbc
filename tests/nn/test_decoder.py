"""The multinomial composition decoder."""

import torch
import torch.nn.functional as F

from scmamba.nn import CompositionDecoder, SparseRows


def test_nll_equals_the_dense_multinomial_per_count():
    torch.manual_seed(0)
    dec = CompositionDecoder(8, 50, n_batch=3)
    torch.nn.init.normal_(dec.batch_offset)
    z = F.normalize(torch.randn(20, 8), dim=-1)
    x = torch.poisson(torch.rand(20, 50) * 2) * (torch.rand(20, 50) < 0.3)
    x[0, 0] = 1.0
    x[1] = 0  # no counts: left out of the mean
    batch = torch.randint(0, 3, (20,))
    got = dec.nll(z, SparseRows.from_tensor(x), batch)
    logp = F.log_softmax(dec.linear(z * 8**0.5) + dec.batch_offset[batch], -1)
    per_cell = -(x * logp).sum(-1) / x.sum(-1).clamp_min(1)
    assert torch.allclose(got, per_cell[x.sum(-1) > 0].mean(), atol=1e-5)


def test_log_frequency_starts_at_the_mean_composition():
    x = torch.poisson(torch.rand(200, 30) * 4)
    freq = x.sum(0) + 1
    dec = CompositionDecoder(4, 30, log_frequency=torch.log(freq / freq.sum()).numpy())
    torch.nn.init.zeros_(dec.linear.weight)
    p = torch.softmax(dec.logits(torch.zeros(1, 4)), -1)[0]
    assert torch.allclose(p, freq / freq.sum(), atol=1e-6)


def test_batch_offsets_explain_a_batch_shift():
    """With offsets, a shift that only depends on the batch is fitted without changing the embedding."""
    torch.manual_seed(1)
    dec = CompositionDecoder(4, 10, n_batch=2)
    torch.nn.init.zeros_(dec.linear.weight)  # the embedding carries nothing: only bias and offsets can fit
    z = F.normalize(torch.randn(64, 4), dim=-1)
    batch = torch.arange(64) % 2
    base = torch.softmax(torch.randn(10), 0)
    shifted = base.clone()
    shifted[0] *= 20
    shifted /= shifted.sum()
    x = torch.stack([(base if b == 0 else shifted) * 100 for b in batch])
    opt = torch.optim.Adam([dec.batch_offset, dec.linear.bias], lr=0.1)
    target = SparseRows.from_tensor(x)
    for _ in range(300):
        opt.zero_grad()
        loss = dec.nll(z, target, batch)
        loss.backward()
        opt.step()
    p = torch.stack([base if b == 0 else shifted for b in batch])
    entropy = -(p * torch.log(p)).sum(-1).mean()  # the best possible NLL per count
    assert float(loss) < float(entropy) + 0.02
    without = CompositionDecoder(4, 10, n_batch=1)
    torch.nn.init.zeros_(without.linear.weight)
    opt = torch.optim.Adam([without.linear.bias], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss_without = without.nll(z, target)
        loss_without.backward()
        opt.step()
    assert float(loss_without) > float(entropy) + 0.05  # one composition for both batches cannot fit
