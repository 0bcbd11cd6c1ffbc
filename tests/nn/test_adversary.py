"""The adversarial batch classifier learns the batch while the encoders learn to make it unpredictable."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scmamba.nn import BatchClassifier


def test_classifier_and_embedding_get_their_own_terms():
    torch.manual_seed(0)
    clf = BatchClassifier(8, 3)
    z = torch.randn(20, 8, requires_grad=True)
    batch = torch.arange(20) % 3
    clf.loss(z, batch).backward()
    # the classifier's gradient is that of its cross-entropy alone
    grads = [p.grad.clone() for p in clf.parameters()]
    clf.zero_grad()
    F.cross_entropy(clf(z.detach()), batch).backward()
    for got, want in zip(grads, (p.grad for p in clf.parameters()), strict=True):
        torch.testing.assert_close(got, want)
    # the embedding's gradient is that of the cross-entropy against the other batches, evenly
    z_grad = z.grad.clone()
    z.grad = None
    others = (1.0 - F.one_hot(batch, 3).float()) / 2
    (-(F.log_softmax(clf(z), -1) * others).sum(-1).mean()).backward()
    torch.testing.assert_close(z_grad, z.grad)


def test_encoder_trained_against_the_classifier_hides_the_batch():
    torch.manual_seed(0)
    batch = torch.arange(400) % 2
    x = torch.randn(400, 6) + 3.0 * batch[:, None].float()  # the batch shifts every input feature

    def separation(z):
        return float((z[batch == 0].mean(0) - z[batch == 1].mean(0)).norm() / z.std(0).norm())

    encoder, clf = torch.nn.Linear(6, 4), BatchClassifier(4, 2)
    before = separation(encoder(x).detach())
    opt = torch.optim.Adam([*encoder.parameters(), *clf.parameters()], lr=1e-2)
    for _ in range(400):
        opt.zero_grad()
        clf.loss(encoder(x), batch).backward()
        opt.step()
    z = encoder(x).detach()
    assert separation(z) < 0.5 * before  # 0.53 vs 1.66
    probe = torch.nn.Linear(4, 2)  # a fresh linear classifier fitted on the final embedding
    popt = torch.optim.Adam(probe.parameters(), lr=5e-2)
    for _ in range(300):
        popt.zero_grad()
        F.cross_entropy(probe(z), batch).backward()
        popt.step()
    assert (probe(z).argmax(1) == batch).float().mean() < 0.8  # 0.71; the input itself is separable
