import json
import math
import subprocess
import sys
import textwrap
import warnings
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course_lib.train as train_module
from course_lib.data import TensorLoader, load_dataset, make_loaders, subset
from course_lib.history import History
from course_lib.runtime import seed_everything
from course_lib.train import (
    Callback,
    EarlyStopping,
    LRLogger,
    ModelCheckpoint,
    NonFiniteLossError,
    Trainer,
)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.1), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "val")


def _run(digits, epochs=3, seed=0, **kw):
    seed_everything(seed)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(model, opt, device="cpu", **kw)
    train, val = digits
    hist = trainer.fit(
        TensorLoader(train, batch_size=64, seed=seed),
        TensorLoader(val, batch_size=256, shuffle=False),
        epochs,
    )
    return trainer, hist


def test_fit_learns_and_records_history(digits):
    trainer, hist = _run(digits, epochs=4)
    assert hist.epoch == [1, 2, 3, 4]
    assert len(hist.train_loss) == len(hist.val_acc) == len(hist.lr) == len(hist.time) == 4
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] > 0.8  # 8x8 digits are easy
    frame = hist.to_frame()
    assert list(frame.index) == [1, 2, 3, 4] and "val_loss" in frame
    assert History.from_dict(json.loads(json.dumps(hist.to_dict()))) == hist


def test_evaluate_and_predict_agree_with_a_direct_computation(digits):
    trainer, _ = _run(digits, epochs=1)
    val = digits[1]
    loader = TensorLoader(val, batch_size=50, shuffle=False)
    logits, targets = trainer.predict(loader)
    assert logits.shape == (len(val), 10) and torch.equal(targets, val.y)
    with torch.no_grad():
        trainer.model.eval()
        direct = trainer.model(val.x)
    assert torch.allclose(logits, direct, atol=1e-5)
    metrics = trainer.evaluate(loader)
    assert metrics["loss"] == pytest.approx(F.cross_entropy(direct, val.y).item(), rel=1e-5)
    assert metrics["acc"] == pytest.approx((direct.argmax(1) == val.y).float().mean().item())


def test_same_seed_same_losses(digits):
    _, h1 = _run(digits, epochs=2, seed=3)
    _, h2 = _run(digits, epochs=2, seed=3)
    _, h3 = _run(digits, epochs=2, seed=4)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    assert h1.train_loss != h3.train_loss


def _fresh(seed=0, scheduler=True):
    seed_everything(seed)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5) if scheduler else None
    return model, opt, sched


def test_early_stopping_stops_and_restores_best(digits):
    class Scripted(Callback):  # feed a fixed validation curve to EarlyStopping
        curve = [1.0, 0.5, 0.6, 0.7, 0.4, 0.9, 0.95]

        def on_epoch_end(self, trainer, epoch, logs):
            logs["val_loss"] = self.curve[epoch - 1]

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 2:
                self.weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    snap, es = Snapshot(), EarlyStopping(patience=2)
    trainer, hist = _run(digits, epochs=7, callbacks=[Scripted(), snap, es])
    assert hist.epoch == [1, 2, 3, 4]  # best at epoch 2, no improvement for 2 epochs
    assert es.best == 0.5 and es.best_epoch == 2
    assert "early stopping" in hist.stopped_reason and "epoch 2" in hist.stopped_reason
    for k, v in trainer.model.state_dict().items():  # restore_best: epoch-2 weights are back
        assert torch.equal(v, snap.weights[k]), k


def test_early_stopping_standalone_min_delta():
    es = EarlyStopping(patience=2, min_delta=0.1, mode="max")
    decisions = [es.step(v) for v in [0.5, 0.55, 0.58, 0.7, 0.75, 0.79]]
    assert decisions == [False, False, True, False, False, True]


def test_early_stopping_without_validation_is_a_clear_error(digits):
    model, opt, _ = _fresh(scheduler=False)
    trainer = Trainer(model, opt, device="cpu", callbacks=[EarlyStopping()])
    with pytest.raises(KeyError, match="pass validation data"):
        trainer.fit(TensorLoader(digits[0], batch_size=64), epochs=1)


def test_per_step_scheduler_and_lr_logging(digits):
    model, opt, _ = _fresh(scheduler=False)
    loader = TensorLoader(digits[0], batch_size=128)
    sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.0, total_iters=2 * len(loader))
    lrs = LRLogger()
    Trainer(model, opt, device="cpu", scheduler=sched, scheduler_step="step", callbacks=[lrs]).fit(
        loader, epochs=2
    )
    assert len(lrs.lrs) == 2 * len(loader)
    assert lrs.lrs[-1] == pytest.approx(0.0, abs=1e-9) and lrs.lrs[0] < 0.1


def test_gradient_clipping_bounds_the_update(digits):
    seen = []

    class GradNorm(Callback):
        def on_batch_end(self, trainer, step, loss):
            norms = [p.grad.norm() for p in trainer.model.parameters()]
            seen.append(float(torch.stack(norms).norm()))

    _run(digits, epochs=1, grad_clip=0.01, callbacks=[GradNorm()])
    assert max(seen) <= 0.01 * 1.0001


def test_bad_arguments_are_clear_errors():
    model, opt, _ = _fresh(scheduler=False)
    with pytest.raises(ValueError, match="scheduler_step"):
        Trainer(model, opt, scheduler_step="batch")
    with pytest.raises(ValueError, match="on_nonfinite"):
        Trainer(model, opt, on_nonfinite="ignore")
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="ReduceLROnPlateau.*scheduler_step='epoch'"):
        Trainer(model, opt, scheduler=plateau, scheduler_step="step")


# -- targets, losses and logs ----------------------------------------------------------------


def test_soft_targets_count_the_argmax_as_label(digits):
    """One-hot (N, K) targets give the same run as the labels: same loss, same accuracy."""
    train, _ = digits
    train = subset(train, 512)
    soft = F.one_hot(train.y, 10).float()
    hists = []
    for y in (train.y, soft):
        model, opt, _ = _fresh(scheduler=False)
        hists.append(
            Trainer(model, opt, device="cpu").fit(
                TensorLoader(train.x, y, batch_size=64, seed=0), epochs=2
            )
        )
    hard, one_hot = hists
    assert hard.train_acc[-1] > 0.5
    assert one_hot.train_acc == hard.train_acc
    assert one_hot.train_loss == pytest.approx(hard.train_loss, rel=1e-5)


def test_validation_loss_is_plain_cross_entropy(digits):
    smoothed = partial(F.cross_entropy, label_smoothing=0.2)
    train, val = digits
    for eval_loss_fn, oracle in [(None, F.cross_entropy), (smoothed, smoothed)]:
        model, opt, _ = _fresh(scheduler=False)
        kw = {} if eval_loss_fn is None else {"eval_loss_fn": eval_loss_fn}
        trainer = Trainer(model, opt, loss_fn=smoothed, device="cpu", **kw)
        hist = trainer.fit(
            TensorLoader(train, batch_size=64, seed=0), TensorLoader(val, shuffle=False), 1
        )
        model.eval()
        with torch.no_grad():
            expected = oracle(model(val.x), val.y).item()
        assert hist.val_loss[-1] == pytest.approx(expected, rel=1e-5)
    assert F.cross_entropy(model(val.x), val.y).item() != pytest.approx(expected, rel=1e-3)


def test_logged_lr_is_the_lr_of_the_epochs_last_step(digits):
    class UsedLR(Callback):  # the lr the coming optimiser step uses
        def __init__(self):
            self.lrs = []

        def on_after_backward(self, trainer, step):
            self.lrs.append(trainer.optimizer.param_groups[0]["lr"])

    train = subset(digits[0], 512)
    model, opt, _ = _fresh(scheduler=False)
    loader = TensorLoader(train, batch_size=128, seed=0)
    n = len(loader)
    per_step = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.1, total_iters=2 * n)
    used = UsedLR()
    hist = Trainer(
        model, opt, device="cpu", scheduler=per_step, scheduler_step="step", callbacks=[used]
    ).fit(loader, epochs=2)
    assert hist.lr == [used.lrs[n - 1], used.lrs[2 * n - 1]]
    assert used.lrs[n - 1] != used.lrs[n]  # the schedule moved within the epoch

    model, opt, sched = _fresh()  # StepLR, gamma 0.5 per epoch
    used = UsedLR()
    hist = Trainer(model, opt, device="cpu", scheduler=sched, callbacks=[used]).fit(
        loader, epochs=3
    )
    assert hist.lr == pytest.approx([0.1, 0.05, 0.025])
    assert hist.lr == [used.lrs[n - 1], used.lrs[2 * n - 1], used.lrs[3 * n - 1]]


def test_early_stopping_mode_follows_the_monitored_name():
    assert EarlyStopping(monitor="val_acc").mode == "max"
    assert EarlyStopping(monitor="val_auc").mode == "max"
    assert EarlyStopping(monitor="macro_f1").mode == "max"
    assert EarlyStopping(monitor="val_loss").mode == "min"
    assert EarlyStopping(monitor="val_acc", mode="min").mode == "min"  # explicit wins
    with pytest.raises(ValueError, match="pass mode="):
        EarlyStopping(monitor="grad_norm")
    es = EarlyStopping(monitor="val_acc", patience=1)
    assert [es.step(v) for v in (0.5, 0.6, 0.55)] == [False, False, True]


def test_epochs_is_the_total_and_a_second_fit_says_so(digits):
    model, opt, _ = _fresh(scheduler=False)
    trainer = Trainer(model, opt, device="cpu")
    loader = TensorLoader(subset(digits[0], 256), batch_size=64, seed=0)
    trainer.fit(loader, epochs=2)
    with pytest.warns(UserWarning, match="nothing to train, 2 epochs done.*total"):
        hist = trainer.fit(loader, epochs=2)
    assert hist.epoch == [1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hist = trainer.fit(loader, epochs=3)
    assert hist.epoch == [1, 2, 3] and trainer.step == 3 * len(loader)


def test_drop_last_with_too_few_examples_is_a_clear_error(digits):
    model, opt, _ = _fresh(scheduler=False)
    loader = TensorLoader(subset(digits[0], 10), batch_size=32, drop_last=True)
    with pytest.raises(ValueError, match="drop_last=True"):
        Trainer(model, opt, device="cpu").fit(loader, epochs=1)


@pytest.mark.parametrize(
    "env", [{}, {"CI": "true"}, {"TQDM_DISABLE": "1"}, {"COURSE_PROFILE": "ci"}]
)
def test_one_progress_bar_per_fit_unless_ci_or_tqdm_disable(digits, monkeypatch, capsys, env):
    for key in ("CI", "TQDM_DISABLE", "COURSE_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    model, opt, _ = _fresh(scheduler=False)
    trainer = Trainer(model, opt, device="cpu")
    trainer.fit(TensorLoader(subset(digits[0], 256), batch_size=64), epochs=3)
    err = capsys.readouterr().err
    if env:
        assert err == ""
    else:  # a text bar here (tqdm.auto gives notebooks a widget): epochs, not batches
        assert "fit: 100%" in err and "3/3" in err and "train_loss=" in err
        assert "/4 " not in err  # no per-epoch bar over the 4 batches


# -- stopping: non-finite losses and callbacks ------------------------------------------------


def _nan_at(call: int):
    calls = {"n": 0}

    def loss_fn(logits, y):
        calls["n"] += 1
        loss = F.cross_entropy(logits, y)
        return loss * float("nan") if calls["n"] == call else loss

    return loss_fn


class _Snapshot(Callback):
    """The weights right after optimisation step ``at``."""

    def __init__(self, at):
        self.at, self.weights = at, None

    def on_batch_end(self, trainer, step, loss):
        if step == self.at:
            self.weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("on_nonfinite", ["stop", "raise"])
def test_non_finite_loss_keeps_the_last_finite_weights(digits, on_nonfinite):
    model, opt, _ = _fresh(scheduler=False)
    snap = _Snapshot(at=4)
    trainer = Trainer(
        model, opt, loss_fn=_nan_at(5), device="cpu", on_nonfinite=on_nonfinite, callbacks=[snap]
    )
    loader = TensorLoader(digits[0], batch_size=64, seed=0)
    if on_nonfinite == "raise":
        with pytest.raises(NonFiniteLossError, match="at step 5 "):
            trainer.fit(loader, epochs=3)
    else:
        hist = trainer.fit(loader, epochs=3)
        assert len(hist) == 1 and "step 5" in hist.stopped_reason
        assert trainer.stop_training
    assert trainer.step == 4
    for k, v in model.state_dict().items():
        assert torch.isfinite(v.float()).all(), k
        assert torch.equal(v, snap.weights[k]), k


def test_stop_training_from_a_batch_hook_is_honoured_at_the_next_batch(digits):
    class StopAt(Callback):
        def on_batch_end(self, trainer, step, loss):
            if step == 3:
                trainer.stop_training = True

    model, opt, _ = _fresh(scheduler=False)
    trainer = Trainer(model, opt, device="cpu", callbacks=[StopAt()])
    hist = trainer.fit(TensorLoader(digits[0], batch_size=64, seed=0), epochs=2)
    assert trainer.step == 3 and hist.epoch == [1]


# -- hooks --------------------------------------------------------------------------------


def test_batch_hook_can_replace_the_batch(digits):
    """on_batch_start sees the batch on the device and its return value is trained on."""
    x, y = digits[0].x[:256], digits[0].y[:256]
    seen = []

    class Flip(Callback):  # mirror every image and turn labels into soft targets
        def on_batch_start(self, trainer, xb, yb):
            seen.append(xb.device)
            return xb.flip(-1), F.one_hot(yb, 10).float()

    class Record(Callback):
        def on_batch_start(self, trainer, xb, yb):
            self.last = (xb, yb)
            return xb, yb

    record = Record()
    model, opt, _ = _fresh(scheduler=False)
    Trainer(model, opt, device="cpu", callbacks=[Flip(), record]).fit(
        TensorLoader(x, y, batch_size=64, shuffle=False), epochs=1
    )
    xb, yb = record.last
    assert seen == [torch.device("cpu")] * 4
    assert torch.equal(xb, x[192:].flip(-1)) and torch.equal(yb, F.one_hot(y[192:], 10).float())


def test_after_backward_hooks_see_unscaled_gradients(digits):
    """Under fp16 the loss is scaled by 2**16 for backward; hooks must see true gradients."""
    x, y = digits[0].x[:64], digits[0].y[:64]
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    oracle = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    oracle.load_state_dict(model.state_dict())
    F.cross_entropy(oracle(x), y).backward()
    expected = torch.cat([p.grad.flatten() for p in oracle.parameters()])

    class Grab(Callback):
        def on_after_backward(self, trainer, step):
            self.grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])

    grab = Grab()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, opt, device="cpu", amp="fp16", callbacks=[grab])
    assert trainer.scaler.is_enabled() and trainer.scaler.get_scale() == 2.0**16
    trainer.fit(TensorLoader(x, y, batch_size=64, shuffle=False), epochs=1)
    ratio = grab.grad.norm() / expected.norm()
    assert ratio == pytest.approx(1.0, rel=0.02)  # scaled gradients would give 65536
    assert F.cosine_similarity(grab.grad, expected, dim=0) > 0.999


# -- mixed precision, channels_last, compile ------------------------------------------------------


class Probe(nn.Module):
    """A small CNN that records, inside forward, what autocast and the memory format did."""

    def __init__(self, channels=1):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(channels, 4, 3, padding=1), nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        self.input_channels_last = x.is_contiguous(memory_format=torch.channels_last)
        self.input_strides = x.stride()
        h = self.conv(x)
        self.conv_dtype = h.dtype
        return self.fc(h.flatten(1))


@pytest.mark.parametrize(
    "amp, dtype",
    [("bf16", torch.bfloat16), (True, torch.bfloat16), ("off", torch.float32),
     ("fp32", torch.float32), (False, torch.float32), (None, torch.float32)],
)  # fmt: skip
def test_amp_choice_is_the_dtype_inside_forward_on_cpu(digits, amp, dtype):
    probe = Probe()
    trainer = Trainer(probe, torch.optim.SGD(probe.parameters(), lr=0.1), device="cpu", amp=amp)
    trainer.fit(TensorLoader(subset(digits[0], 128), batch_size=64), epochs=1)
    assert probe.conv_dtype == dtype
    assert trainer.amp_dtype == (None if dtype == torch.float32 else dtype)


def test_unknown_amp_value_is_a_clear_error():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="amp must be.*'bf16'.*got 'float8'"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu", amp="float8")


def test_channels_last_inputs_and_weights_on_cpu():
    torch.manual_seed(0)
    x, y = torch.randn(128, 3, 8, 8), torch.randint(0, 10, (128,))  # 3 channels: NHWC != NCHW
    probe = Probe(channels=3)
    trainer = Trainer(
        probe, torch.optim.SGD(probe.parameters(), lr=0.1), device="cpu", channels_last=True
    )
    trainer.fit(TensorLoader(x, y, batch_size=64), epochs=1)
    assert probe.input_channels_last and probe.input_strides == (192, 1, 24, 3)
    assert probe.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert probe.conv.weight.stride() == (27, 1, 9, 3)
    assert trainer.predict(TensorLoader(x, y, shuffle=False))[0].shape == (128, 10)


def test_compile_runs_the_model_through_dynamo(digits):
    from torch._dynamo.eval_frame import OptimizedModule
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()  # a torch.compile backend that counts compiled graphs
    try:
        trainer, hist = _run(digits, epochs=1, compile={"backend": counter})
        assert isinstance(trainer.model, OptimizedModule) and counter.frame_count >= 1
        assert hist.train_acc[-1] > 0.3
    finally:
        torch._dynamo.reset()


# -- checkpoints ------------------------------------------------------------------------------


class _Scripted(Callback):  # feed a fixed validation curve to EarlyStopping
    curve = [1.0, 0.5, 0.6, 0.7, 0.4, 0.9, 0.95]

    def on_epoch_end(self, trainer, epoch, logs):
        logs["val_loss"] = self.curve[epoch - 1]


def test_checkpoint_holds_the_final_state_of_every_callback(digits, tmp_path):
    """[ModelCheckpoint, EarlyStopping] and the reverse order write the same checkpoint."""
    saved = {}
    for name in ("checkpoint_first", "stopper_first"):
        ckpt = tmp_path / f"{name}.pt"
        mc, es = ModelCheckpoint(ckpt), EarlyStopping(patience=2)
        order = [mc, es] if name == "checkpoint_first" else [es, mc]
        trainer, hist = _run(digits, epochs=7, callbacks=[_Scripted(), *order])
        assert hist.epoch == [1, 2, 3, 4]
        saved[name] = torch.load(ckpt, weights_only=False)
        state = dict(saved[name]["callbacks"])["EarlyStopping"]
        assert saved[name]["stop_training"] is True
        assert (state["wait"], state["best_epoch"], state["best"]) == (2, 2, 0.5)
    a, b = saved["checkpoint_first"], saved["stopper_first"]
    assert (
        dict(a["callbacks"])["EarlyStopping"]["wait"]
        == dict(b["callbacks"])["EarlyStopping"]["wait"]
    )
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


def test_resuming_a_finished_early_stopped_run_does_not_train_again(digits, tmp_path):
    ckpt = tmp_path / "run.pt"
    trainer, hist = _run(
        digits, epochs=7, callbacks=[_Scripted(), ModelCheckpoint(ckpt), EarlyStopping(patience=2)]
    )
    final = {k: v.clone() for k, v in trainer.model.state_dict().items()}  # epoch-2 weights
    seed_everything(5)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    resumed = Trainer(
        model, opt, device="cpu",
        callbacks=[_Scripted(), ModelCheckpoint(ckpt), EarlyStopping(patience=2)],
    )  # fmt: skip
    with pytest.warns(UserWarning, match="the run stopped \\(early stopping"):
        again = resumed.fit(TensorLoader(digits[0], batch_size=64), epochs=7, resume_from=ckpt)
    assert again.epoch == [1, 2, 3, 4] and resumed.step == trainer.step
    assert again.stopped_reason == hist.stopped_reason
    for k, v in model.state_dict().items():  # the best (epoch 2) weights, as the first run ended
        assert torch.equal(v, final[k]), k


@pytest.mark.parametrize("loader_kind", ["tensor", "tensor-global-seed", "dataloader"])
def test_checkpoint_resume_gives_the_same_weights(digits, tmp_path, loader_kind):
    train, val = digits
    train = subset(train, 400)

    def loader():
        if loader_kind == "tensor":
            return TensorLoader(train, batch_size=32, seed=0)
        if loader_kind == "tensor-global-seed":  # its seed comes from torch's global RNG
            return TensorLoader(train, batch_size=32)
        return make_loaders(train, batch_size=32, device="cpu", seed=0)[0]

    model, opt, sched = _fresh()
    Trainer(model, opt, device="cpu", scheduler=sched).fit(loader(), epochs=4)
    straight = {k: v.clone() for k, v in model.state_dict().items()}

    ckpt = tmp_path / "run.pt"
    model, opt, sched = _fresh()
    Trainer(model, opt, device="cpu", scheduler=sched, callbacks=[ModelCheckpoint(ckpt)]).fit(
        loader(), epochs=2
    )
    # a new session: different RNG state, fresh objects, then resume
    torch.manual_seed(999)
    model, opt, sched = _fresh(seed=123)
    trainer = Trainer(model, opt, device="cpu", scheduler=sched)
    hist = trainer.fit(loader(), epochs=4, resume_from=ckpt)
    assert hist.epoch == [1, 2, 3, 4] and trainer.step == 4 * len(loader())
    for k, v in model.state_dict().items():
        assert torch.equal(v, straight[k]), k


def test_checkpoint_loads_whatever_the_trainers_device(digits, tmp_path):
    """Loading used to map the checkpoint to the trainer's device, RNG ByteTensors included;
    torch.set_rng_state needs CPU tensors. A trainer that claims another device (``meta``,
    standing in for a GPU here) must still restore everything and resume identically."""
    train = subset(digits[0], 400)
    model, opt, sched = _fresh()
    Trainer(model, opt, device="cpu", scheduler=sched).fit(
        TensorLoader(train, batch_size=32, seed=0), epochs=4
    )
    straight = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = tmp_path / "run.pt"
    model, opt, sched = _fresh()
    Trainer(model, opt, device="cpu", scheduler=sched, callbacks=[ModelCheckpoint(ckpt)]).fit(
        TensorLoader(train, batch_size=32, seed=0), epochs=2
    )
    torch.manual_seed(999)
    model, opt, sched = _fresh(seed=123)
    trainer = Trainer(model, opt, device="cpu", scheduler=sched)
    trainer.device = torch.device("meta")
    trainer.load_checkpoint(ckpt)
    trainer.device = torch.device("cpu")
    trainer.fit(TensorLoader(train, batch_size=32, seed=0), epochs=4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, straight[k]), k


# -- devices under torchrun -----------------------------------------------------------------


def test_trainer_places_model_ddp_and_loaders_on_the_local_rank_gpu(monkeypatch):
    """A faked 2-GPU machine, process LOCAL_RANK=1 of 2: everything goes to cuda:1."""
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(train_module, "init_distributed", lambda: (1, 2))
    moved = []
    monkeypatch.setattr(nn.Module, "to", lambda self, device, **kw: moved.append(device) or self)

    class FakeDDP(nn.Module):
        def __init__(self, module, device_ids=None):
            super().__init__()
            self.module, self.device_ids = module, device_ids

    monkeypatch.setattr(train_module, "DistributedDataParallel", FakeDDP)
    model = nn.Linear(4, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), amp="off")
    assert trainer.device == torch.device("cuda", 1)
    assert moved == [torch.device("cuda", 1)] and trainer.model.device_ids == [1]

    loader = TensorLoader(torch.zeros(6, 4), torch.zeros(6, dtype=torch.long), batch_size=2)
    loader.device = torch.device("cuda")  # as if built with TensorLoader(..., device="cuda")
    targets = []
    monkeypatch.setattr(TensorLoader, "to", lambda self, d: targets.append(torch.device(d)) or self)
    prepared = trainer._prepare(loader, train=True)
    assert targets == [torch.device("cuda", 1)]
    assert (prepared.rank, prepared.world_size) == (1, 2)


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader
    from course_lib.data import TensorLoader, load_dataset, make_loaders
    from course_lib.runtime import seed_everything
    from course_lib.train import Trainer, ModelCheckpoint
    torch.set_num_threads(1)
    seed_everything(0)
    out, kind = sys.argv[1], sys.argv[2]
    train = load_dataset("digits", "train")
    val = load_dataset("digits", "val")  # 145 examples: the two shards differ in length
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    rank = int(os.environ["RANK"])
    calls = [0]

    def loss_fn(logits, y):  # "nan": rank 1 alone gets a NaN loss at its 3rd step
        calls[0] += 1
        loss = F.cross_entropy(logits, y)
        return loss * float("nan") if kind == "nan" and rank == 1 and calls[0] == 3 else loss

    trainer = Trainer(model, opt, loss_fn=loss_fn, device="cpu", on_nonfinite="stop",
                      callbacks=[ModelCheckpoint(out + "/ckpt.pt")])
    # validation loaders left at shuffle=True on purpose: evaluation must not shuffle or pad
    if kind == "dataloader":
        tl = make_loaders(train, batch_size=32, device="cpu")[0]
        vl = DataLoader(val, batch_size=64, shuffle=True)
    else:
        tl = TensorLoader(train, batch_size=32)
        vl = TensorLoader(val, batch_size=64)
    hist = trainer.fit(tl, vl, epochs=1 if kind == "nan" else 3)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    with open(f"{out}/rank{trainer.rank}.json", "w") as f:
        json.dump({"world": trainer.world_size, "hist": hist.to_dict(), "w": flat.tolist(),
                   "step": trainer.step}, f)
    """
)


def _torchrun(tmp_path, kind, timeout=240):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path), kind]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("loader_kind", ["dataloader", "tensor"])
def test_ddp_with_two_cpu_processes(tmp_path, digits, loader_kind):
    r0, r1 = _torchrun(tmp_path, loader_kind)
    assert r0["world"] == r1["world"] == 2
    assert r0["w"] == r1["w"]  # DDP keeps replicas identical
    assert r0["hist"]["val_acc"] == r1["hist"]["val_acc"]  # metrics are all-reduced
    assert r0["hist"]["train_loss"][-1] < r0["hist"]["train_loss"][0]
    assert (tmp_path / "ckpt.pt").exists()  # rank 0 writes the checkpoint
    # the all-reduced validation metrics equal a single-process evaluation of the final model
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=False)["model"])
    val = digits[1]
    assert len(val) % 2 == 1
    with torch.no_grad():
        logits = model(val.x)
    acc = (logits.argmax(1) == val.y).float().mean().item()
    assert r0["hist"]["val_acc"][-1] == pytest.approx(acc, abs=1e-7)
    assert r0["hist"]["val_loss"][-1] == pytest.approx(
        F.cross_entropy(logits, val.y).item(), rel=1e-5
    )


@pytest.mark.slow
def test_ddp_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    r0, r1 = _torchrun(tmp_path, "nan", timeout=120)  # a hang would time out
    assert r0["step"] == r1["step"] == 2  # both stop before the step rank 1 could not take
    assert r0["w"] == r1["w"] and all(math.isfinite(v) for v in r0["w"])
    reasons = [r["hist"]["stopped_reason"] for r in (r0, r1)]
    assert all("non-finite training loss on 1 of 2 processes (here " in m for m in reasons)
    assert "(here nan)" in reasons[1] and "(here nan)" not in reasons[0]


# -- GPU path: runs where CUDA is available, skipped elsewhere ----------------------------


class _GpuProbe(nn.Module):
    """conv-BN-ReLU-pool-linear; records the autocast dtype and input layout inside forward."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc = nn.Linear(32 * 14 * 14, 10)

    def forward(self, x):
        self.input_channels_last = x.is_contiguous(memory_format=torch.channels_last)
        h = self.features[0](x)
        self.conv_dtype = h.dtype
        return self.fc(self.features[1:](h).flatten(1))


def _gpu_run(model=None, **kw):
    ds = load_dataset("mnist5k", "train")
    seed_everything(0)
    model = model or _GpuProbe()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(model, opt, device="cuda", **kw)
    hist = trainer.fit(TensorLoader(ds, batch_size=256, device="cuda"), epochs=3)
    return trainer, hist


@pytest.mark.gpu
@pytest.mark.parametrize(
    "amp, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16), ("off", torch.float32)]
)
def test_gpu_amp(amp, dtype):
    trainer, hist = _gpu_run(amp=amp)
    assert trainer.unwrapped_model.conv_dtype == dtype  # autocast really ran in forward
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    assert hist.train_loss[-1] < hist.train_loss[0] and hist.train_acc[-1] > 0.8


@pytest.mark.gpu
def test_gpu_channels_last():
    trainer, hist = _gpu_run(channels_last=True)
    net = trainer.unwrapped_model
    assert net.input_channels_last
    assert net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net.features[0].weight.stride() == (9, 1, 3, 1)
    assert hist.train_acc[-1] > 0.8


@pytest.mark.gpu
def test_gpu_compile():
    from torch._dynamo.eval_frame import OptimizedModule
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 14 * 14, 10),
    )  # fmt: skip
    trainer, hist = _gpu_run(model, channels_last=True, compile=True)
    assert isinstance(trainer.model, OptimizedModule)
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo compiled at least one graph
    assert hist.train_acc[-1] > 0.8
