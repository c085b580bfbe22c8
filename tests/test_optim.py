"""course_lib.optim against torch.optim and torch.optim.lr_scheduler."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import lr_scheduler

from course_lib import optim as O

# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------


def _torch_lrs(make_scheduler, num_steps: int, base_lr: float = 0.1, **opt_kwargs) -> np.ndarray:
    """The lr torch's scheduler sets before each of ``num_steps`` optimiser steps."""
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr, **opt_kwargs)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(num_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


def test_step_and_multistep_match_torch():
    ours = O.schedule_values(partial(O.step_lr, base_lr=0.1, step_size=7, gamma=0.5), 40)
    ref = _torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 40)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    milestones = [5, 12, 30]
    ours = O.schedule_values(partial(O.multistep_lr, base_lr=0.1, milestones=milestones), 40)
    ref = _torch_lrs(lambda o: lr_scheduler.MultiStepLR(o, milestones=milestones), 40)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_cosine_matches_torch():
    ours = O.schedule_values(partial(O.cosine_lr, base_lr=0.1, total_steps=50, min_lr=1e-3), 51)
    ref = _torch_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=1e-3), 51)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    assert O.cosine_lr(80, 0.1, 50, 1e-3) == 1e-3  # stays at the minimum afterwards


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_matches_torch(strategy, three_phase):
    kwargs = dict(pct_start=0.25, anneal_strategy=strategy, three_phase=three_phase)
    ours = O.schedule_values(partial(O.one_cycle_lr, max_lr=0.5, total_steps=60, **kwargs), 60)
    ref = _torch_lrs(
        lambda o: lr_scheduler.OneCycleLR(
            o, max_lr=0.5, total_steps=60, cycle_momentum=False, **kwargs
        ),
        60,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-15)


def _torch_momenta(make_scheduler, num_steps: int, adam: bool = False) -> np.ndarray:
    """The momentum (SGD) or beta1 (Adam) torch's OneCycleLR sets before each step."""
    param = nn.Parameter(torch.zeros(1))
    if adam:
        opt = torch.optim.Adam([param], lr=0.1)
    else:
        opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    sched = make_scheduler(opt)
    values = []
    for _ in range(num_steps):
        group = opt.param_groups[0]
        values.append(group["betas"][0] if adam else group["momentum"])
        opt.step()
        sched.step()
    return np.array(values)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("adam", [False, True])
def test_one_cycle_momentum_matches_torch(strategy, three_phase, adam):
    kwargs = dict(pct_start=0.25, anneal_strategy=strategy, three_phase=three_phase)
    momenta = dict(base_momentum=0.8, max_momentum=0.95)
    ours = O.schedule_values(partial(O.one_cycle_momentum, total_steps=60, **momenta, **kwargs), 60)
    ref = _torch_momenta(
        lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=60, **momenta, **kwargs),
        60,
        adam=adam,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-15)
    # momentum falls while the learning rate rises, and the other way round
    lrs = O.schedule_values(partial(O.one_cycle_lr, max_lr=0.5, total_steps=60, **kwargs), 60)
    assert ours[0] == 0.95 and ours.argmin() == lrs.argmax()


def test_sgd_follows_torch_under_one_cycle_with_momentum_cycling():
    torch.manual_seed(0)
    a = nn.Linear(5, 3)
    b = nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    opts = [O.SGD(a.parameters(), lr=0.1, momentum=0.9),
            torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, foreach=False)]  # fmt: skip
    scheds = [lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=20) for o in opts]
    for _ in range(20):
        for model, opt, sched in zip((a, b), opts, scheds):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
        assert opts[0].param_groups[0]["momentum"] == opts[1].param_groups[0]["momentum"]
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_optim_does_not_reexport_param_groups():
    assert not hasattr(O, "param_groups") and "param_groups" not in O.__all__


def test_warmup_matches_sequential_linear_then_main():
    main = partial(O.cosine_lr, base_lr=0.1, total_steps=30)
    ours = O.schedule_values(O.warmup(main, warmup_steps=10, start_factor=0.1), 40)

    def make(o):
        warm = lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10)
        cosine = lr_scheduler.CosineAnnealingLR(o, T_max=30)
        return lr_scheduler.SequentialLR(o, [warm, cosine], milestones=[10])

    np.testing.assert_allclose(ours, _torch_lrs(make, 40), rtol=1e-9, atol=1e-12)
    wc = O.schedule_values(
        partial(O.warmup_cosine, total_steps=100, warmup_steps=10, base_lr=1.0), 100
    )
    assert wc[0] == 0.0 and wc[10] == 1.0 and np.all(np.diff(wc[:11]) > 0)
    assert np.all(np.diff(wc[10:]) < 0) and wc[-1] > 0


def test_as_lambda_scheduler_drives_an_optimizer():
    p = nn.Parameter(torch.zeros(1))
    q = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.05}], lr=0.1)
    sched = O.as_lambda_scheduler(opt, partial(O.step_lr, base_lr=0.1, step_size=3))
    seen = []
    for _ in range(7):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    np.testing.assert_allclose([s[0] for s in seen], [0.1] * 3 + [0.01] * 3 + [0.001])
    np.testing.assert_allclose([s[1] for s in seen], [0.05] * 3 + [0.005] * 3 + [0.0005])


# ----------------------------------------------------------------------------------------------
# optimisers
# ----------------------------------------------------------------------------------------------


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=g)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    return model, x, y


def _trajectory(make_opt, steps: int = 100) -> list[torch.Tensor]:
    torch.manual_seed(1)
    model, x, y = _problem()
    opt = make_opt(model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _assert_same(a, b, atol=1e-6):
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=0, atol=atol)


SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.9, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-3),
]


@pytest.mark.parametrize("kwargs", SGD_SETTINGS, ids=str)
def test_sgd_matches_torch(kwargs):
    ours = _trajectory(lambda p: O.SGD(p, **kwargs))
    ref = _trajectory(lambda p: torch.optim.SGD(p, foreach=False, **kwargs))
    _assert_same(ours, ref)


ADAM_SETTINGS = [
    dict(lr=1e-2),
    dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
]


@pytest.mark.parametrize("kwargs", ADAM_SETTINGS, ids=str)
def test_adam_and_adamw_match_torch(kwargs):
    ours = _trajectory(lambda p: O.Adam(p, **kwargs))
    ref = _trajectory(lambda p: torch.optim.Adam(p, foreach=False, **kwargs))
    _assert_same(ours, ref)
    ours = _trajectory(lambda p: O.AdamW(p, **kwargs))
    ref = _trajectory(lambda p: torch.optim.AdamW(p, foreach=False, **kwargs))
    _assert_same(ours, ref)


def test_our_optimisers_work_with_torch_schedulers_and_closures():
    model, x, y = _problem()
    opt = O.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=10)  # cycles momentum too
    for _ in range(10):
        loss = opt.step(lambda: (opt.zero_grad(), F.cross_entropy(model(x), y).backward())[0])
        sched.step()
    assert loss is None  # our closure returned None: step passes it through
    with pytest.raises(ValueError, match="Nesterov"):
        O.SGD(model.parameters(), lr=0.1, nesterov=True)


def test_l2_vs_decoupled_weight_decay():
    """Seed 001: L2 and decoupled weight decay coincide for SGD but not for Adam."""
    wd = 0.1
    sgd_l2 = _trajectory(lambda p: O.SGD(p, lr=0.1, weight_decay=wd))
    sgd_dec = _trajectory(lambda p: O.SGD(p, lr=0.1, weight_decay=wd, decoupled=True))
    _assert_same(sgd_l2, sgd_dec, atol=1e-10)
    adam_l2 = _trajectory(lambda p: O.Adam(p, lr=1e-2, weight_decay=wd))
    adamw = _trajectory(lambda p: O.AdamW(p, lr=1e-2, weight_decay=wd))
    gap = max(float((a - b).abs().max()) for a, b in zip(adam_l2, adamw))
    assert gap > 1e-2
    # with momentum, SGD's two decays differ as well (the L2 term enters the momentum buffer)
    mom_l2 = _trajectory(lambda p: O.SGD(p, lr=0.1, momentum=0.9, weight_decay=wd))
    mom_dec = _trajectory(lambda p: O.SGD(p, lr=0.1, momentum=0.9, weight_decay=wd, decoupled=True))
    assert max(float((a - b).abs().max()) for a, b in zip(mom_l2, mom_dec)) > 1e-3


# ----------------------------------------------------------------------------------------------
# learning-rate range test
# ----------------------------------------------------------------------------------------------


def test_lr_range_test_sweeps_stops_and_restores():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(512, 10, generator=g)
    y = x @ torch.randn(10, 1, generator=g) + 0.1 * torch.randn(512, 1, generator=g)
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 512, 64)]  # cycled by the test
    torch.manual_seed(3)
    model = nn.Linear(10, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = O.lr_range_test(
        model, batches, F.mse_loss, start_lr=1e-4, end_lr=10.0, num_steps=100, smoothing=0.9
    )
    n = len(res.lrs)
    np.testing.assert_allclose(res.lrs, 1e-4 * (1e5) ** (np.arange(n) / 99), rtol=1e-12)
    assert res.diverged and n < 100  # SGD on this quadratic diverges for lr above ~1
    assert len(res.losses) == len(res.raw_losses) == n
    assert res.suggested_lr == pytest.approx(res.min_loss_lr / 10)
    assert 1e-3 < res.min_loss_lr < 2.0 and 1e-4 <= res.steepest_lr <= res.lrs[-1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cosine_with_nothing_left_to_anneal_does_not_divide_by_zero():
    from course_lib.optim import cosine_lr, warmup_cosine

    assert cosine_lr(0, 0.1, 0) == 0.1 and cosine_lr(3, 0.1, 0, min_lr=0.01) == 0.01
    values = [warmup_cosine(s, total_steps=4, warmup_steps=4, base_lr=0.1) for s in range(6)]
    assert all(v == v for v in values)  # no NaN, no ZeroDivisionError
