"""Trainer overhead: course_lib's Trainer against a bare hand-written PyTorch loop.

Same model, data, batch size and seed; both loops track the mean loss and accuracy of an
epoch, as any loop in the book does. Epochs alternate between the two, and so does which of
the two goes first in a round, so that both see the same machine state; the first epoch of
each is a warm-up and is not timed. Throughputs are medians over the timed epochs. Prints examples/second for each and the ratio (higher is better; 1.00 = no overhead).

    python benchmarks/trainer_overhead.py [--epochs 5] [--device cpu|cuda] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import TensorLoader, load_dataset
from course_lib.runtime import get_device, seed_everything
from course_lib.train import Trainer


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def bare_epoch(model, opt, loader, device) -> float:
    model.train()
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * yb.shape[0]
        correct += (logits.argmax(1) == yb).sum()
        n += yb.shape[0]
    return float(loss_sum) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per loop")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else get_device()
    ds = load_dataset("mnist5k", "trainval")

    def setup():
        seed_everything(0)
        model = small_cnn().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, TensorLoader(ds, batch_size=args.batch_size, device=device, seed=0)

    bare_model, bare_opt, bare_loader = setup()
    tr_model, tr_opt, tr_loader = setup()
    trainer = Trainer(tr_model, tr_opt, device=device, progress=False)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def time_bare() -> float:
        sync()
        t0 = time.perf_counter()
        bare_epoch(bare_model, bare_opt, bare_loader, device)
        sync()
        return time.perf_counter() - t0

    def time_trainer(epoch: int) -> float:
        sync()
        t0 = time.perf_counter()
        trainer.fit(tr_loader, epochs=epoch + 1)
        sync()
        return time.perf_counter() - t0

    bare_times, trainer_times = [], []
    for epoch in range(args.epochs + 1):
        # Alternate which loop goes first, so neither always runs on a warmer machine.
        if epoch % 2 == 0:
            b, t = time_bare(), time_trainer(epoch)
        else:
            t, b = time_trainer(epoch), time_bare()
        if epoch > 0:  # epoch 0 warms up both
            bare_times.append(b)
            trainer_times.append(t)
    n = len(ds)
    bare = n / statistics.median(bare_times)
    tr = n / statistics.median(trainer_times)
    print(f"device {device} | threads {torch.get_num_threads()} | batch {args.batch_size} | "
          f"{args.epochs} timed epochs of {n} examples")  # fmt: skip
    print(f"bare loop : {bare:9.0f} examples/s")
    print(f"Trainer   : {tr:9.0f} examples/s")
    per_round = statistics.median(b / t for b, t in zip(bare_times, trainer_times))
    print(f"median of per-epoch ratios: {per_round:.2f}")
    print(f"ratio trainer/bare: {tr / bare:.2f}")


if __name__ == "__main__":
    main()
