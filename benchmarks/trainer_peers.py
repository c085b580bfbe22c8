"""course_lib's Trainer against its peers: a bare loop, Lightning Fabric, the Lightning Trainer.

The same model (a small CNN), data (MNIST 5k, in-memory ``TensorLoader``, same order for
everyone), optimiser (SGD with momentum) and seed, trained for ``--epochs`` epochs by each of

- ``bare``: the hand-written loop a student would write (forward, loss, backward, step,
  running loss and accuracy kept on the device);
- ``course``: :class:`course_lib.train.Trainer` (progress bar off, no callbacks);
- ``fabric``: ``lightning.Fabric`` with the same loop (``fabric.setup``/``fabric.backward``);
- ``lightning``: ``lightning.pytorch.Trainer`` with a LightningModule whose
  ``training_step`` does the same (logger, checkpointing, progress bar, model summary and
  sanity checks off; running loss/accuracy kept like the bare loop, not with ``self.log``).

Each *round* runs all four from a fresh initialisation, in an order that rotates from round
to round; round 0 is a warm-up. Every timed round gives each peer a throughput ratio against
the bare loop of the *same* round (higher is better, 1.00 = as fast as the bare loop);
printed are the median ratio and its min-max over the rounds. Each peer's final weights are
compared with the bare loop's of the same round (max abs difference; 0 = identical).

Peak memory: each peer also trains once in a fresh Python process; reported is the growth
of that process's peak resident set size during training: the peak (``VmHWM``) is reset to
the current RSS just before training (``/proc/self/clear_refs``, Linux) and read after it,
so imports and data loading are excluded. It counts everything training allocates
(gradients, optimiser state, autograd buffers, framework objects). On CUDA the peak of
``torch.cuda.max_memory_allocated`` is printed by the child as well.

Lightning is a benchmark peer only: ``pip install '.[bench]'`` (``lightning>=2.4``).

    python benchmarks/trainer_peers.py [--rounds 3] [--epochs 1] [--examples 2000]
        [--device cpu|cuda] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from bare_loop import bare_epoch, small_cnn

from course_lib.data import TensorLoader, load_dataset, subset
from course_lib.runtime import seed_everything
from course_lib.train import Trainer

PEERS = ("bare", "course", "fabric", "lightning")


def fresh(ds, device, batch_size):
    seed_everything(0)
    model = small_cnn().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt, TensorLoader(ds, batch_size=batch_size, device=device, seed=0)


def run_bare(model, opt, loader, epochs, device) -> None:
    for _ in range(epochs):
        bare_epoch(model, opt, loader, device)


def run_course(model, opt, loader, epochs, device) -> None:
    Trainer(model, opt, device=device, progress=False, amp="off").fit(loader, epochs=epochs)


def run_fabric(model, opt, loader, epochs, device) -> None:
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator=device.type, devices=1, precision="32-true")
    fmodel, fopt = fabric.setup(model, opt)
    for _ in range(epochs):
        fmodel.train()
        loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
        for xb, yb in loader:
            xb, yb = fabric.to_device((xb, yb))
            logits = fmodel(xb)
            loss = F.cross_entropy(logits, yb)
            fopt.zero_grad(set_to_none=True)
            fabric.backward(loss)
            fopt.step()
            loss_sum += loss.detach() * yb.shape[0]
            correct += (logits.argmax(1) == yb).sum()
            n += yb.shape[0]
        float(loss_sum), float(correct)


def run_lightning(model, opt, loader, epochs, device) -> None:
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            logits = self.net(xb)
            loss = F.cross_entropy(logits, yb)
            self.loss_sum += loss.detach() * yb.shape[0]
            self.correct += (logits.argmax(1) == yb).sum()
            return loss

        def on_train_epoch_start(self):
            self.loss_sum = torch.zeros((), device=self.device)
            self.correct = torch.zeros((), device=self.device)

        def on_train_epoch_end(self):
            float(self.loss_sum), float(self.correct)

        def configure_optimizers(self):
            return opt

        def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
            optimizer.zero_grad(set_to_none=True)

    trainer = pl.Trainer(
        accelerator=device.type, devices=1, max_epochs=epochs, precision="32-true",
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(Module(), train_dataloaders=loader)


RUNNERS = {"bare": run_bare, "course": run_course, "fabric": run_fabric, "lightning": run_lightning}


def quiet() -> None:
    """Silence Lightning's info lines and warnings (it resets its log level when imported)."""
    import lightning.pytorch  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(peer, ds, device, args) -> tuple[float, torch.Tensor]:
    model, opt, loader = fresh(ds, device, args.batch_size)
    sync(device)
    t0 = time.perf_counter()
    RUNNERS[peer](model, opt, loader, args.epochs, device)
    sync(device)
    seconds = time.perf_counter() - t0
    return seconds, torch.cat([p.detach().flatten().cpu() for p in model.parameters()])


def memory_child(peer: str, args) -> None:
    """Train ``peer`` once in this (fresh) process; print its peak-RSS growth in MiB."""
    quiet()
    device = torch.device(args.device)
    ds = subset(load_dataset("mnist5k", "trainval"), args.examples)
    model, opt, loader = fresh(ds, device, args.batch_size)
    before = reset_peak_rss()
    RUNNERS[peer](model, opt, loader, args.epochs, device)
    after = peak_rss()
    cuda = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(json.dumps({"rss_mib": (after - before) / 2**20, "cuda_mib": cuda}))


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(key + ":"))
    return int(line.split()[1]) * 1024


def reset_peak_rss() -> int:
    """Set the peak RSS (VmHWM) to the current RSS and return it, in bytes (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # "5": reset the peak resident set size to the current one
    return _status_bytes("VmRSS")


def peak_rss() -> int:
    return _status_bytes("VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run")
    parser.add_argument("--examples", type=int, default=2000, help="training examples")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: tiny nets gain nothing from more, and on a shared "
        "machine more threads than free cores make every timing noisy); 0 = torch's default",
    )  # fmt: skip
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--memory-child", choices=PEERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args.memory_child, args)
    quiet()
    device = torch.device(args.device)
    ds = subset(load_dataset("mnist5k", "trainval"), args.examples)

    seconds = {p: [] for p in PEERS}
    weights = {p: [] for p in PEERS}
    for round_ in range(args.rounds + 1):
        order = PEERS[round_ % 4 :] + PEERS[: round_ % 4]  # rotate who goes first
        for peer in order:
            s, w = timed(peer, ds, device, args)
            if round_ > 0:  # round 0 warms up every peer
                seconds[peer].append(s)
                weights[peer].append(w)

    n = len(ds) * args.epochs
    print(
        f"device {device} | threads {torch.get_num_threads()} | batch {args.batch_size} | "
        f"{args.rounds} timed rounds x {args.epochs} epoch(s) of {len(ds)} examples | "
        f"torch {torch.__version__}"
    )
    memory = {} if args.no_memory else {p: measure_memory(p, args) for p in PEERS}
    header = f"{'peer':10s} {'examples/s':>10s} {'ratio vs bare (median, min-max)':>32s} "
    print(header + f"{'max |w - w_bare|':>17s} {'peak RSS growth':>16s}")
    for peer in PEERS:
        ratios = [b / s for b, s in zip(seconds["bare"], seconds[peer])]
        diff = max(float((w - wb).abs().max()) for w, wb in zip(weights[peer], weights["bare"]))
        mem = f"{memory[peer]['rss_mib']:.2f} MiB" if peer in memory else "-"
        print(
            f"{peer:10s} {n / statistics.median(seconds[peer]):10.0f} "
            f"{statistics.median(ratios):>14.3f} ({min(ratios):.3f}-{max(ratios):.3f})       "
            f"{diff:17.3g} {mem:>16s}"
        )
    course = [b / s for b, s in zip(seconds["fabric"], seconds["course"])]
    print(
        f"course/fabric throughput: median {statistics.median(course):.3f} "
        f"(min-max {min(course):.3f}-{max(course):.3f}); target >= 1"
    )


def measure_memory(peer: str, args) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", peer, "--device", args.device,
           "--epochs", str(args.epochs), "--examples", str(args.examples),
           "--batch-size", str(args.batch_size)]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
