import torch
from torch import nn

from course_lib.data import TensorLoader
from course_lib.diagnostics import DeadReLUCounter, dead_relu_masks
from course_lib.train import Trainer


def _mlp_with_dead_units():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[0].bias[:3] = -100.0  # units 0-2 of layer 1 can never fire on small inputs
    return model


def test_masks_match_a_direct_computation_of_the_pre_activations():
    model = _mlp_with_dead_units()
    x = torch.randn(300, 5)
    masks = dead_relu_masks(model, x, batch_size=64)  # several batches: the max is over all of x
    h1 = torch.relu(model[0](x))
    h2 = torch.relu(model[2](h1))
    assert [m.shape for m in masks] == [(8,), (6,)]
    assert torch.equal(masks[0], h1.amax(0) == 0)
    assert torch.equal(masks[1], h2.amax(0) == 0)
    assert masks[0][:3].all()


def test_conv_units_are_channel_positions_and_mode_and_hooks_are_restored():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
    with torch.no_grad():
        conv[0].bias.copy_(torch.tensor([-1e3, 1e3]))
    conv.train()
    masks = dead_relu_masks(conv, torch.randn(4, 1, 5, 5))
    assert masks[0].shape == (2, 5, 5)
    assert masks[0][0].all() and not masks[0][1].any()
    assert conv.training
    assert not conv[1]._forward_hooks


def test_counter_records_before_training_and_after_every_epoch():
    model = _mlp_with_dead_units()
    x, y = torch.randn(128, 5), torch.randint(0, 3, (128,))
    counter = DeadReLUCounter(x)
    Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.01), callbacks=[counter], device="cpu"
    ).fit(TensorLoader(x, y, batch_size=32, seed=0), epochs=3)
    assert len(counter.masks) == 4
    assert all(len(c) == 2 for c in counter.counts)
    assert counter.counts[-1][0] == int(dead_relu_masks(model, x)[0].sum())
    assert counter.counts[0][0] >= 3


def test_revived_counts_units_dead_at_one_check_and_alive_at_a_later_one():
    counter = DeadReLUCounter(torch.zeros(1, 1))
    t, f = True, False
    counter.masks = [
        [torch.tensor([t, f, f, t])],
        [torch.tensor([f, t, f, t])],  # unit 0 revives
        [torch.tensor([f, f, t, t])],  # unit 1 revives; unit 3 dead throughout
    ]
    assert counter.revived() == [2]
    assert counter.counts == [[2], [2], [2]]
    counter.masks = [[torch.tensor([t, f])], [torch.tensor([t, t])]]  # deaths only
    assert counter.revived() == [0]


def test_gradient_norms_during_training_match_signal_stats_of_a_manually_trained_copy():
    import copy

    import numpy as np
    import torch.nn.functional as F

    from course_lib.diagnostics import gradient_norms_during_training
    from course_lib.models import signal_stats

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.Flatten(),
        nn.Linear(4 * 36, 3),
    )
    twin = copy.deepcopy(model)
    batches = [(torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))) for _ in range(2)]
    probe = (torch.randn(5, 1, 6, 6), torch.randint(0, 3, (5,)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    profiles = gradient_norms_during_training(model, batches, opt, probe, checkpoints=(0, 3))
    assert sorted(profiles) == [0, 3] and profiles[0].shape == (2,)
    assert np.allclose(profiles[0], signal_stats(twin, *probe, modules=nn.Conv2d)["grad_norm"])

    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):  # three steps: the two batches, then the first one again
        x, y = batches[step % 2]
        twin_opt.zero_grad()
        F.cross_entropy(twin(x), y).backward()
        twin_opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert np.allclose(
        profiles[3], signal_stats(twin, *probe, modules=nn.Conv2d)["grad_norm"], rtol=1e-5
    )
