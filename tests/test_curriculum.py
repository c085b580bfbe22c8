import math

import pytest
import torch
from torch import nn

from course_lib.curriculum import CurriculumLoader, curriculum_order, difficulty_scores, pacing


def test_pacing_formulas():
    assert pacing(0, 100, start=0.2, full_at=0.5) == pytest.approx(0.2)
    assert pacing(25, 100, start=0.2, full_at=0.5) == pytest.approx(0.6)
    assert pacing(80, 100, start=0.2, full_at=0.5) == 1.0
    assert pacing(25, 100, 0.2, 0.5, "root") == pytest.approx(math.sqrt(0.04 + 0.96 * 0.5))
    assert pacing(49, 100, 0.2, 0.5, "step") == 0.2 and pacing(50, 100, 0.2, 0.5, "step") == 1.0
    with pytest.raises(ValueError):
        pacing(0, 10, start=0.0)


def test_orders_and_teacher_scores():
    scores = torch.tensor([0.5, 0.1, 0.9, 0.3])
    assert curriculum_order(scores, "curriculum").tolist() == [1, 3, 0, 2]
    assert curriculum_order(scores, "anti").tolist() == [2, 0, 3, 1]
    assert sorted(curriculum_order(scores, "random", seed=3).tolist()) == [0, 1, 2, 3]
    torch.manual_seed(0)
    teacher, x, y = nn.Linear(3, 2), torch.randn(8, 3), torch.randint(0, 2, (8,))
    ref = nn.functional.cross_entropy(teacher(x), y, reduction="none").detach()
    torch.testing.assert_close(difficulty_scores(teacher, x, y), ref)


@pytest.mark.parametrize("ordering", ["curriculum", "anti", "random", "none"])
def test_loader_spends_the_same_budget_and_respects_the_pacing(ordering):
    n = 100
    x = torch.arange(n).float()[:, None]
    y = torch.zeros(n, dtype=torch.long)
    scores = torch.arange(n).float()  # example i has difficulty i
    loader = CurriculumLoader(
        x, y, scores, ordering, epochs=4, batch_size=10, start=0.2, full_at=0.5
    )
    allowed = curriculum_order(scores, ordering, seed=0)
    seen, step = [], 0
    for epoch in range(4):
        loader.set_epoch(epoch)
        for xb, _ in loader:
            n_avail = math.ceil(pacing(step, 40, 0.2, 0.5) * n) if ordering != "none" else n
            assert set(xb[:, 0].long().tolist()) <= set(allowed[:n_avail].tolist())
            seen.append(xb)
            step += 1
    assert len(loader) == 10 and step == 40 and sum(len(b) for b in seen) == 400
    first = torch.cat(seen[:5])[:, 0]
    if ordering == "curriculum":
        assert first.max() < 40  # only the easiest examples early on
    if ordering == "anti":
        assert first.min() >= 60
