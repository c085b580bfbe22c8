import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import TensorLoader, load_dataset, make_loaders, subset
from course_lib.runtime import seed_everything
from course_lib.train import (
    Callback,
    EarlyStopping,
    History,
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


@pytest.mark.parametrize("loader_kind", ["tensor", "dataloader"])
def test_checkpoint_resume_gives_the_same_weights(digits, tmp_path, loader_kind):
    train, val = digits
    train = subset(train, 400)

    def loader():
        if loader_kind == "tensor":
            return TensorLoader(train, batch_size=32, seed=0)
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


def test_non_finite_loss_names_the_step(digits):
    model, opt, _ = _fresh(scheduler=False)
    calls = {"n": 0}

    def loss_fn(logits, y):
        calls["n"] += 1
        loss = F.cross_entropy(logits, y)
        return loss * float("nan") if calls["n"] == 5 else loss

    trainer = Trainer(model, opt, loss_fn=loss_fn, device="cpu")
    with pytest.raises(NonFiniteLossError, match="at step 5 "):
        trainer.fit(TensorLoader(digits[0], batch_size=64), epochs=1)
    calls["n"] = 0
    trainer = Trainer(small_cnn(), opt, loss_fn=loss_fn, device="cpu", on_nonfinite="stop")
    hist = trainer.fit(TensorLoader(digits[0], batch_size=64), epochs=3)
    assert len(hist) == 1 and "step 5" in hist.stopped_reason


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


def test_bf16_autocast_and_channels_last_on_cpu(digits):
    trainer, hist = _run(digits, epochs=2, amp="bf16", channels_last=True)
    assert trainer.amp_dtype == torch.bfloat16
    assert trainer.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert hist.train_loss[-1] < hist.train_loss[0]


def test_bad_arguments_are_clear_errors():
    model, opt, _ = _fresh(scheduler=False)
    with pytest.raises(ValueError, match="scheduler_step"):
        Trainer(model, opt, scheduler_step="batch")
    with pytest.raises(ValueError, match="on_nonfinite"):
        Trainer(model, opt, on_nonfinite="ignore")


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch
    from torch import nn
    from course_lib.data import TensorLoader, load_dataset, make_loaders
    from course_lib.runtime import seed_everything
    from course_lib.train import Trainer, ModelCheckpoint
    torch.set_num_threads(1)
    seed_everything(0)
    train, val = load_dataset("digits", "train"), load_dataset("digits", "val")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    out = sys.argv[1]
    trainer = Trainer(model, opt, device="cpu", callbacks=[ModelCheckpoint(out + "/ckpt.pt")])
    if sys.argv[2] == "dataloader":
        tl, vl = make_loaders(train, val, batch_size=32, device="cpu")
    else:
        tl = TensorLoader(train, batch_size=32)
        vl = TensorLoader(val, batch_size=64, shuffle=False)
    hist = trainer.fit(tl, vl, epochs=3)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    with open(f"{out}/rank{trainer.rank}.json", "w") as f:
        json.dump({"world": trainer.world_size, "hist": hist.to_dict(), "w": flat.tolist()}, f)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("loader_kind", ["dataloader", "tensor"])
def test_ddp_with_two_cpu_processes(tmp_path, digits, loader_kind):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path), loader_kind]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["w"] == r1["w"]  # DDP keeps replicas identical
    assert r0["hist"]["val_acc"] == r1["hist"]["val_acc"]  # metrics are all-reduced
    assert r0["hist"]["train_loss"][-1] < r0["hist"]["train_loss"][0]
    assert (tmp_path / "ckpt.pt").exists()  # rank 0 writes the checkpoint
    # the all-reduced validation accuracy equals a single-process evaluation of the final model
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=False)["model"])
    val = digits[1]
    with torch.no_grad():
        acc = (model(val.x).argmax(1) == val.y).float().mean().item()
    assert r0["hist"]["val_acc"][-1] == pytest.approx(acc)


# -- GPU path: runs where CUDA is available, skipped elsewhere ----------------------------


def _gpu_run(**kw):
    ds = load_dataset("mnist5k", "train")
    seed_everything(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 14 * 14, 10),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(model, opt, device="cuda", **kw)
    hist = trainer.fit(TensorLoader(ds, batch_size=256, device="cuda"), epochs=3)
    return trainer, hist


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_gpu_amp(amp):
    trainer, hist = _gpu_run(amp=amp)
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    assert hist.train_loss[-1] < hist.train_loss[0] and hist.train_acc[-1] > 0.8


@pytest.mark.gpu
def test_gpu_channels_last_and_compile():
    trainer, hist = _gpu_run(channels_last=True, compile=True)
    assert trainer.unwrapped_model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert hist.train_acc[-1] > 0.8
