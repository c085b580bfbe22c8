import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.data import TensorLoader
from course_lib.multitask import ClassifierWithDecoder, train_two_term, two_term_loss


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    return x, y


def test_two_term_loss_matches_torch_losses():
    torch.manual_seed(0)
    model = ClassifierWithDecoder((1, 4, 4), num_classes=2, hidden=8, latent=4)
    x, y = _data()
    logits, recon = model(x)
    assert logits.shape == (64, 2) and recon.shape == x.shape
    ce, rec = two_term_loss(logits, recon, x, y)
    torch.testing.assert_close(ce, F.cross_entropy(logits, y))
    torch.testing.assert_close(rec, F.mse_loss(recon, x, reduction="sum") / 64)


@pytest.mark.parametrize("weighting", ["ce_only", "sum", "balanced", "uncertainty"])
def test_weightings_record_their_terms(weighting):
    torch.manual_seed(0)
    x, y = _data()
    model = ClassifierWithDecoder((1, 4, 4), num_classes=2, hidden=8, latent=4)
    out = train_two_term(
        model, TensorLoader(x, y, batch_size=16, seed=0), (x, y), weighting, epochs=2
    )
    assert all(len(v) == 2 for v in out.values())
    if weighting == "ce_only":
        assert out["w_rec_share"] == [0.0, 0.0] and out["w_r"] == [0.0, 0.0]
    if weighting == "sum":
        assert out["w_r"] == [1.0, 1.0]
        assert out["w_rec_share"][0] == pytest.approx(
            out["rec"][0] / (out["rec"][0] + out["ce"][0]), rel=0.2
        )
    if weighting == "balanced":
        torch.manual_seed(0)
        fresh = ClassifierWithDecoder((1, 4, 4), num_classes=2, hidden=8, latent=4)
        xb, yb = next(iter(TensorLoader(x, y, batch_size=16, seed=0)))
        with torch.no_grad():
            ce, rec = two_term_loss(*fresh(xb), xb, yb)
        assert out["w_r"][0] == pytest.approx((ce / rec).item(), rel=1e-6)
    if weighting == "uncertainty":
        assert out["w_r"][-1] != 1.0 and math.isfinite(out["w_r"][-1])
