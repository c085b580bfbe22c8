"""Optimisation helpers: learning-rate schedules, the LR range test and teaching optimisers.

* Schedules are plain functions ``lr = f(step, ...)`` so they can be printed, plotted and
  tested; :func:`as_lambda_scheduler` plugs any of them into a torch optimiser.
  ``step`` counts ``scheduler.step()`` calls from 0, exactly like torch's schedulers.
* :func:`lr_range_test` sweeps the learning rate exponentially over a few hundred batches
  (Smith, 2017) and suggests a value.
* :class:`SGD`, :class:`Adam` and :class:`AdamW` are from-scratch versions of torch.optim's,
  with the whole update rule visible in ``step()``; they follow the same trajectories.

L2 regularisation versus decoupled weight decay (Loshchilov & Hutter, 2019): "L2" adds λw
to the gradient before the optimiser sees it; "decoupled" shrinks the weights directly,
w ← (1 − ηλ)w, next to the gradient step. For plain SGD the two are the same update. For
Adam they are not: the L2 term is divided by √v̂ like the rest of the gradient, so weights
with large gradients are barely decayed. That is why AdamW exists.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "step_lr",
    "multistep_lr",
    "cosine_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "warmup",
    "warmup_cosine",
    "schedule_values",
    "as_lambda_scheduler",
    "LRRangeResult",
    "lr_range_test",
    "SGD",
    "Adam",
    "AdamW",
]

Schedule = Callable[[int], float]

# ----------------------------------------------------------------------------------------------
# learning-rate schedules: lr as a function of the step
# ----------------------------------------------------------------------------------------------


def step_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Step decay: multiply by ``gamma`` every ``step_size`` steps (``StepLR``).

    lr = base_lr · gamma^⌊step / step_size⌋, e.g. ×0.1 every 30 epochs in the classic ResNet
    recipe.
    """
    return base_lr * gamma ** (step // step_size)


def multistep_lr(step: int, base_lr: float, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Multiply by ``gamma`` at each milestone (``MultiStepLR``).

    lr = base_lr · gamma^(number of milestones ≤ step).
    """
    return base_lr * gamma ** bisect_right(sorted(milestones), step)


def cosine_lr(step: int, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Cosine annealing from ``base_lr`` to ``min_lr`` over ``total_steps`` (``CosineAnnealingLR``).

    lr = min_lr + (base_lr − min_lr)·(1 + cos(π·step / total_steps)) / 2, and ``min_lr`` after
    ``total_steps`` (torch's scheduler would start rising again there).
    """
    if total_steps <= 0:  # nothing to anneal (e.g. warmup_cosine with total == warmup)
        return min_lr if step > 0 else base_lr
    t = min(step, total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * t)) / 2.0


def _anneal(start: float, end: float, pct: float, strategy: str) -> float:
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)
    if strategy == "linear":
        return start + (end - start) * pct
    raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {strategy!r}.")


def _one_cycle(
    step: int,
    total_steps: int,
    pct_start: float,
    values: Sequence[tuple[float, float]],
    anneal_strategy: str,
) -> float:
    """Anneal through the phases of a one-cycle schedule, torch's ``OneCycleLR`` arithmetic.

    Phase ends (in steps): pct_start·T − 1, then (three phases) 2·pct_start·T − 2, and T − 1;
    ``values`` holds each phase's (start, end) value.
    """
    up_end = float(pct_start * total_steps) - 1
    ends = [up_end, 2 * up_end, total_steps - 1] if len(values) == 3 else [up_end, total_steps - 1]
    step = min(step, total_steps - 1)
    start_step = 0.0
    for i, (end_step, (start, end)) in enumerate(zip(ends, values)):
        if step <= end_step or i == len(ends) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return _anneal(start, end, pct, anneal_strategy)
        start_step = end_step
    raise AssertionError("unreachable")


def one_cycle_lr(
    step: int,
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    three_phase: bool = False,
) -> float:
    """One-cycle policy (Smith & Topin, 2018), same values as torch's ``OneCycleLR``.

    Rise from max_lr / div_factor to max_lr during the first ``pct_start`` of the steps, then
    anneal to max_lr / (div_factor · final_div_factor). ``three_phase=True`` first comes back
    down to the start value symmetrically and only then anneals to the minimum. The momentum
    moves the other way: :func:`one_cycle_momentum`.
    """
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    if three_phase:
        values = [(initial, max_lr), (max_lr, initial), (initial, minimum)]
    else:
        values = [(initial, max_lr), (max_lr, minimum)]
    return _one_cycle(step, total_steps, pct_start, values, anneal_strategy)


def one_cycle_momentum(
    step: int,
    total_steps: int,
    pct_start: float = 0.3,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    three_phase: bool = False,
) -> float:
    """The momentum half of the one-cycle policy (``OneCycleLR(cycle_momentum=True)``).

    While the learning rate rises, the momentum (SGD's μ, Adam's β1) falls from
    ``max_momentum`` to ``base_momentum``, and it climbs back while the learning rate anneals:
    a large step then gets less inertia (Smith, 2018). With ``three_phase=True`` it stays at
    ``max_momentum`` during the final annealing phase. Same values as torch's scheduler.
    """
    if three_phase:
        values = [
            (max_momentum, base_momentum),
            (base_momentum, max_momentum),
            (max_momentum, max_momentum),
        ]
    else:
        values = [(max_momentum, base_momentum), (base_momentum, max_momentum)]
    return _one_cycle(step, total_steps, pct_start, values, anneal_strategy)


def warmup(schedule: Schedule, warmup_steps: int, start_factor: float = 0.0) -> Schedule:
    """Prepend a linear warmup to any schedule; returns a new function of the step.

    For step < warmup_steps: lr = schedule(0) · (start_factor + (1 − start_factor) · step /
    warmup_steps); afterwards the wrapped schedule runs from its own step 0, i.e.
    lr = schedule(step − warmup_steps). Same values as torch's
    ``SequentialLR([LinearLR(start_factor, total_iters=warmup_steps), main], [warmup_steps])``.

    Example: ``warmup(partial(cosine_lr, base_lr=0.1, total_steps=900), warmup_steps=100)``.
    """

    def warmed_up(step: int) -> float:
        if step < warmup_steps:
            return schedule(0) * (start_factor + (1.0 - start_factor) * step / warmup_steps)
        return schedule(step - warmup_steps)

    return warmed_up


def warmup_cosine(
    step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0
) -> float:
    """Linear warmup from 0 over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``.

    The schedule of most modern recipes (e.g. DeiT, "ResNet strikes back": 5 warmup epochs).
    """
    cosine = lambda s: cosine_lr(s, base_lr, total_steps - warmup_steps, min_lr)  # noqa: E731
    return warmup(cosine, warmup_steps)(step)


def schedule_values(schedule: Schedule, num_steps: int) -> np.ndarray:
    """``[schedule(0), ..., schedule(num_steps - 1)]`` as an array, e.g. for plotting."""
    return np.array([schedule(s) for s in range(num_steps)])


def as_lambda_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule, base_lr: float | None = None
) -> LambdaLR:
    """Drive ``optimizer`` with ``schedule`` through ``torch.optim.lr_scheduler.LambdaLR``.

    ``schedule(step)`` returns an absolute learning rate; LambdaLR wants a factor of each
    group's initial lr, so we divide by ``base_lr`` (default: the first group's lr). Groups
    that share one lr then follow the schedule exactly; others keep their ratio to it. Call
    ``scheduler.step()`` once per step (or per epoch, if the schedule counts epochs).
    """
    group = optimizer.param_groups[0]
    base = float(base_lr if base_lr is not None else group.get("initial_lr", group["lr"]))
    if base <= 0:
        raise ValueError("the optimiser's lr must be > 0 to act as the schedule's base.")
    return LambdaLR(optimizer, lambda step: schedule(step) / base)


# ----------------------------------------------------------------------------------------------
# learning-rate range test
# ----------------------------------------------------------------------------------------------


class LRRangeResult(NamedTuple):
    """Outcome of :func:`lr_range_test`.

    * ``lrs`` (T,): learning rates tried, exponentially spaced;
    * ``losses`` (T,): smoothed (bias-corrected exponential moving average) training loss;
    * ``raw_losses`` (T,): the loss of each batch;
    * ``suggested_lr``: min-loss lr / 10, a safe starting value;
    * ``min_loss_lr``: where the smoothed loss was lowest;
    * ``steepest_lr``: where the smoothed loss fell fastest per decade of lr;
    * ``diverged``: whether the sweep stopped early because the loss blew up.
    """

    lrs: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    suggested_lr: float
    min_loss_lr: float
    steepest_lr: float
    diverged: bool


def lr_range_test(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    optimizer_cls: type[torch.optim.Optimizer] = torch.optim.SGD,
    optimizer_kwargs: dict[str, Any] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    restore: bool = True,
) -> LRRangeResult:
    r"""Learning-rate range test: train with lr growing exponentially, watch the loss.

    Step i uses lr_i = start_lr · (end_lr / start_lr)^(i / (num_steps − 1)), one batch per
    step (the loader is cycled if it runs out). The loss is smoothed with an exponential
    moving average (factor ``smoothing``, bias-corrected); the sweep stops once the smoothed
    loss exceeds ``diverge_factor`` × its minimum or is not finite. The loss first stays flat
    (lr too small), then falls, then explodes; a good lr lies on the falling part, about ten
    times below the minimum. With ``restore=True`` the model gets its weights back afterwards.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}.")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}.")
    saved = copy.deepcopy(model.state_dict()) if restore else None
    device = next(model.parameters()).device
    optimizer = optimizer_cls(model.parameters(), lr=start_lr, **(optimizer_kwargs or {}))
    ratio = end_lr / start_lr
    lrs, smoothed, raw = [], [], []
    average, best, diverged = 0.0, math.inf, False
    batches = iter(loader)
    was_training = model.training
    model.train()
    for i in range(num_steps):
        try:
            xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            xb, yb = next(batches)
        lr = start_lr * ratio ** (i / (num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb.to(device)), yb.to(device))
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        average = smoothing * average + (1 - smoothing) * value
        debiased = average / (1 - smoothing ** (i + 1))
        lrs.append(lr)
        raw.append(value)
        smoothed.append(debiased)
        if not math.isfinite(debiased) or debiased > diverge_factor * best:
            diverged = True
            break
        best = min(best, debiased)
    if saved is not None:
        model.load_state_dict(saved)
    model.train(was_training)
    lrs_a, losses_a = np.array(lrs), np.array(smoothed)
    finite = np.isfinite(losses_a)
    min_loss_lr = float(lrs_a[finite][np.argmin(losses_a[finite])])
    if finite.sum() >= 3:
        slope = np.gradient(losses_a[finite], np.log10(lrs_a[finite]))
        steepest_lr = float(lrs_a[finite][np.argmin(slope)])
    else:
        steepest_lr = min_loss_lr
    return LRRangeResult(
        lrs_a, losses_a, np.array(raw), min_loss_lr / 10, min_loss_lr, steepest_lr, diverged
    )


# ----------------------------------------------------------------------------------------------
# from-scratch optimisers
# ----------------------------------------------------------------------------------------------


class SGD(torch.optim.Optimizer):
    r"""Stochastic gradient descent with momentum, Nesterov and two kinds of weight decay.

    For each parameter w with gradient g (λ = ``weight_decay``, μ = ``momentum``,
    τ = ``dampening``, η = ``lr``):

    * L2 (``decoupled=False``, as torch.optim.SGD): g ← g + λw
    * decoupled (``decoupled=True``): w ← (1 − ηλ)w, and g is left alone
    * momentum: b ← g on the first step, then b ← μb + (1 − τ)g;
      the step direction is d = g + μb (Nesterov) or d = b
    * update: w ← w − η d

    Without momentum both weight-decay kinds give w ← (1 − ηλ)w − ηg: the same update.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("lr, momentum and weight_decay must be >= 0.")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0.")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
            decoupled=decoupled,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            wd = group["weight_decay"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                if wd != 0:
                    if group["decoupled"]:
                        w.mul_(1 - lr * wd)  # shrink the weight itself
                    else:
                        g = g + wd * w  # L2: gradient of (λ/2)‖w‖²
                if mu != 0:
                    state = self.state[w]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(mu).add_((1 - tau) * g)
                    g = g + mu * buf if group["nesterov"] else buf
                w.sub_(lr * g)
        return loss


class Adam(torch.optim.Optimizer):
    r"""Adam (Kingma & Ba, 2015) with L2 regularisation, as torch.optim.Adam.

    For each parameter w with gradient g at step t (η = ``lr``, β1, β2 = ``betas``,
    λ = ``weight_decay``):

    * L2: g ← g + λw   (or, with ``decoupled=True``, w ← (1 − ηλ)w: that is AdamW)
    * first moment:  m ← β1 m + (1 − β1) g        (momentum)
    * second moment: v ← β2 v + (1 − β2) g²       (per-weight scale)
    * bias correction: m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
    * update: w ← w − η m̂ / (√v̂ + ε)
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("lr, eps and weight_decay must be >= 0.")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}.")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            wd = group["weight_decay"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                state = self.state[w]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(w)  # m
                    state["exp_avg_sq"] = torch.zeros_like(w)  # v
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                if wd != 0:
                    if group["decoupled"]:
                        w.mul_(1 - lr * wd)  # decoupled weight decay (AdamW)
                    else:
                        g = g + wd * w  # L2 term, later divided by √v̂ like the gradient
                m.mul_(beta1).add_((1 - beta1) * g)
                v.mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                w.sub_(lr * m_hat / (v_hat.sqrt() + eps))
        return loss


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, as torch.optim.AdamW.

    Each step first shrinks w ← (1 − ηλ)w, then takes the plain Adam step on the loss gradient.
    The default ``weight_decay=1e-2`` matches torch.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, decoupled=True)
