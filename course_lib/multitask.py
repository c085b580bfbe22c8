"""A loss with two terms: classification plus an auxiliary reconstruction, and how to weight them.

The network (:class:`ClassifierWithDecoder`) has a shared encoder and two heads, so the total
loss :math:`L = w_c L_\\text{CE} + w_r L_\\text{rec}` sends the gradients of both terms through
the same encoder. When one term is far larger (here: the reconstruction error *summed* over
784 pixels, tens to hundreds, against a cross-entropy of about :math:`\\ln 10 \\approx 2.3`),
its gradient dominates and the other task is learnt slowly: log both terms separately to see
it. The weightings of :func:`train_two_term`:

* ``"ce_only"``: :math:`w_c = 1, w_r = 0` (the baseline, no auxiliary task);
* ``"sum"``: :math:`w_c = w_r = 1` (the naive sum);
* ``"balanced"``: :math:`w_r = L_\\text{CE}^{(0)} / L_\\text{rec}^{(0)}`, the ratio of the two
  terms on the first batch, fixed from then on (both terms start at the same size);
* ``"uncertainty"``: learnt log-variances :math:`s_c, s_r` (Kendall et al., 2018),
  :math:`L = e^{-s_c} L_\\text{CE} + s_c + e^{-s_r} L_\\text{rec} + s_r`, trained with the
  network: a term with a large loss gets a small weight :math:`e^{-s}` automatically.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ClassifierWithDecoder", "two_term_loss", "train_two_term"]

Weighting = Literal["ce_only", "sum", "balanced", "uncertainty"]


class ClassifierWithDecoder(nn.Module):
    """Encoder ``(B, C, H, W) -> (B, latent)`` (an MLP), a classifier head ``-> (B, K)`` and
    a decoder head ``-> (B, C, H, W)`` (sigmoid, pixels in ``[0, 1]``). ``forward`` returns
    ``(logits, reconstruction)``."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int = 10,
                 hidden: int = 256, latent: int = 32) -> None:  # fmt: skip
        super().__init__()
        self.input_shape = input_shape
        d = int(torch.tensor(input_shape).prod())
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, latent), nn.ReLU()
        )
        self.classifier = nn.Linear(latent, num_classes)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        recon = torch.sigmoid(self.decoder(z)).view(-1, *self.input_shape)
        return self.classifier(z), recon


def two_term_loss(logits: Tensor, recon: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(ce, rec)``: mean cross-entropy, and the squared error summed over each image's
    pixels and averaged over the batch, :math:`\frac1B \sum_i \lVert \hat x_i - x_i \rVert^2`."""
    ce = F.cross_entropy(logits, y)
    rec = (recon - x).pow(2).flatten(1).sum(1).mean()
    return ce, rec


def train_two_term(
    model: ClassifierWithDecoder,
    loader: Iterable[tuple[Tensor, Tensor]],
    test: tuple[Tensor, Tensor],
    weighting: Weighting,
    epochs: int,
    lr: float = 1e-3,
    weight_lr: float = 0.05,
) -> dict[str, list[float]]:
    """Train with Adam under ``weighting`` (see the module); return per-epoch records.

    The log-variances of ``"uncertainty"`` start at 0 (both weights 1) and have their own
    learning rate ``weight_lr``: Adam moves a parameter by about its learning rate per step, so
    with the network's ``lr`` they could change by only ``lr * steps`` in a short run.
    Batches and ``test`` are moved to the device of ``model``'s parameters.

    Keys: ``ce`` and ``rec`` (the unweighted terms, epoch means), ``w_rec_share`` (the share
    of the weighted reconstruction term in the total weighted loss), ``test_acc`` and
    ``test_rec`` (on ``test = (x, y)``), and ``w_r`` (the reconstruction weight relative to the
    classification weight, :math:`w_r / w_c`, at the epoch's end).
    """
    device = next(model.parameters()).device
    test = (test[0].to(device), test[1].to(device))
    log_vars = nn.Parameter(torch.zeros(2, device=device))  # s_c, s_r (used by "uncertainty" only)
    groups = [{"params": list(model.parameters())}]
    if weighting == "uncertainty":
        groups.append({"params": [log_vars], "lr": weight_lr})
    opt = torch.optim.Adam(groups, lr=lr)
    w_r = {"ce_only": 0.0, "sum": 1.0}.get(weighting)
    out: dict[str, list[float]] = {
        k: [] for k in ("ce", "rec", "w_rec_share", "test_acc", "test_rec", "w_r")
    }
    for _ in range(epochs):
        model.train()
        sums, n = torch.zeros(3), 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            ce, rec = two_term_loss(*model(xb), xb, yb)
            if weighting == "uncertainty":
                wc, wr = torch.exp(-log_vars[0]), torch.exp(-log_vars[1])
                total = wc * ce + wr * rec + log_vars.sum()
                w_rel = float((wr / wc).detach())
                parts = (float((wc * ce).detach()), float((wr * rec).detach()))
            else:
                if w_r is None:  # "balanced": fixed on the very first batch
                    w_r = float((ce / rec).detach())
                total, w_rel = ce + w_r * rec, w_r
                parts = (float(ce.detach()), float(w_r * rec.detach()))
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            b = len(yb)
            share = parts[1] / (parts[0] + parts[1])
            sums += torch.tensor([float(ce.detach()), float(rec.detach()), share]) * b
            n += b
        model.eval()
        with torch.no_grad():
            logits, recon = model(test[0])
            _, test_rec = two_term_loss(logits, recon, test[0], test[1])
        means = (sums / n).tolist()
        for key, value in zip(("ce", "rec", "w_rec_share"), means):
            out[key].append(value)
        out["test_acc"].append(float((logits.argmax(1) == test[1]).float().mean()))
        out["test_rec"].append(float(test_rec))
        out["w_r"].append(w_rel)
    return out
