"""Curriculum learning: show easy examples first, then harder ones, at a fixed step budget.

Two ingredients (Hacohen & Weinshall, 2019):

* a **scoring function**: how hard each training example is. :func:`difficulty_scores` uses a
  *teacher*: the per-example cross-entropy of a model trained beforehand (low loss = easy);
* a **pacing function** :math:`g(t) \\in (0, 1]`: the fraction of the sorted training set from
  which the batch of step :math:`t` is drawn. :func:`pacing` gives ``"linear"``,
  ``"root"`` and ``"step"`` schedules that start at ``start`` and reach 1 at ``full_at`` of
  the training steps.

:class:`CurriculumLoader` combines them into a loader for :class:`~course_lib.train.Trainer`:
step :math:`t` draws a batch uniformly from the :math:`\\lceil g(t) N\\rceil` first examples of
an ordering. The ordering is ``"curriculum"`` (easy to hard), ``"anti"`` (hard to easy) or
``"random"`` (a random permutation, the same pacing: the control that isolates the ordering),
and ``"none"`` samples from the whole set at every step (ordinary training). Every variant runs
exactly ``epochs * steps_per_epoch`` steps of ``batch_size`` examples: the same budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from course_lib.data_quality import per_example_loss

__all__ = ["difficulty_scores", "pacing", "curriculum_order", "CurriculumLoader"]

Ordering = Literal["curriculum", "anti", "random", "none"]
Pacing = Literal["linear", "root", "step"]


def difficulty_scores(teacher: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> Tensor:
    r"""Difficulty of each example ``(N,)``: the teacher's loss :math:`-\log p(y_i \mid x_i)`.

    Easy examples (the teacher is confident and right) score near 0, misclassified ones high.
    Train the teacher on the same training set (or, better, score each part with a teacher that
    did not see it, which ranks label noise as hard instead of memorised).
    """
    return per_example_loss(teacher, x, y, batch_size=batch_size)


def pacing(
    t: int | float, total: int, start: float = 0.2, full_at: float = 0.5, kind: Pacing = "linear"
) -> float:
    r"""Fraction of the ordered data available at step ``t`` of ``total`` (``0 <= t < total``).

    With :math:`s` = ``start``, :math:`T = \text{full\_at} \cdot \text{total}` and
    :math:`u = \min(1, t / T)`:

    * ``"linear"``: :math:`g = s + (1 - s)\,u`;
    * ``"root"``: :math:`g = \sqrt{s^2 + (1 - s^2)\,u}` (grows fast early);
    * ``"step"``: :math:`g = s` for :math:`u < 1`, then 1 (two stages).
    """
    if not 0 < start <= 1 or not 0 < full_at <= 1:
        raise ValueError(f"start and full_at must lie in (0, 1], got {start} and {full_at}")
    u = min(1.0, t / (full_at * total))
    if kind == "linear":
        return start + (1 - start) * u
    if kind == "root":
        return math.sqrt(start**2 + (1 - start**2) * u)
    if kind == "step":
        return start if u < 1 else 1.0
    raise ValueError(f"kind must be 'linear', 'root' or 'step', got {kind!r}")


def curriculum_order(scores: Tensor, ordering: Ordering, seed: int = 0) -> Tensor:
    """Indices ``(N,)`` of the examples in the order they become available.

    ``"curriculum"``: ascending score (easy first; ties by index), ``"anti"``: descending,
    ``"random"`` and ``"none"``: a random permutation drawn with ``seed``.
    """
    if ordering == "curriculum":
        return torch.argsort(scores, stable=True)
    if ordering == "anti":
        return torch.argsort(-scores, stable=True)
    if ordering in ("random", "none"):
        return torch.randperm(len(scores), generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"ordering must be 'curriculum', 'anti', 'random' or 'none', got {ordering!r}")


class CurriculumLoader:
    """Batches ``(x[idx], y[idx])`` paced over an ordering of the training set.

    One epoch is ``steps_per_epoch`` batches (default :math:`\\lceil N / B\\rceil`), and the
    loader knows the total ``epochs``, so the pacing runs over all ``epochs * steps_per_epoch``
    steps. Step :math:`t` samples ``batch_size`` indices uniformly (with replacement) from the
    first :math:`\\lceil g(t) N\\rceil` examples of :func:`curriculum_order`; with
    ``ordering="none"`` from all :math:`N` (no curriculum). Sampling uses a generator seeded
    ``seed``, so a run repeats exactly. The Trainer calls :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        scores: Tensor,
        ordering: Ordering,
        *,
        epochs: int,
        batch_size: int = 64,
        steps_per_epoch: int | None = None,
        start: float = 0.2,
        full_at: float = 0.5,
        kind: Pacing = "linear",
        seed: int = 0,
    ) -> None:
        if not len(x) == len(y) == len(scores):
            raise ValueError("x, y and scores need the same length")
        self.x, self.y, self.ordering = x, y, ordering
        self.order = curriculum_order(scores, ordering, seed)
        self.batch_size, self.epochs = batch_size, epochs
        self.steps_per_epoch = steps_per_epoch or math.ceil(len(x) / batch_size)
        self.start, self.full_at, self.kind = start, full_at, kind
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.epoch = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def available(self, step: int) -> int:
        """How many examples of the ordering step ``step`` (from 0) may sample from."""
        if self.ordering == "none":
            return len(self.x)
        g = pacing(step, self.total_steps, self.start, self.full_at, self.kind)
        return max(1, math.ceil(g * len(self.x)))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(self.steps_per_epoch):
            n = self.available(self.epoch * self.steps_per_epoch + i)
            pick = torch.randint(0, n, (self.batch_size,), generator=self.generator)
            idx = self.order[pick]
            yield self.x[idx], self.y[idx]
        self.epoch += 1
