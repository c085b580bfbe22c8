"""Trainer overhead: course_lib's Trainer against a bare hand-written PyTorch loop.

Same model, data, batch size and seed; both loops track the mean loss and accuracy of an
epoch, as any loop in the book does. The run is a series of *rounds*: in each round both
loops train one epoch, and which goes first alternates from round to round, so that both
see the same machine state (on a shared machine the load changes by the minute). Round 0
warms both up and is not timed. Each timed round gives one ratio

    ratio = trainer throughput / bare throughput = bare time / trainer time

(higher is better; 1.00 = no overhead). Reported: the median of the per-round ratios and
their spread (interquartile range and min-max), plus median throughputs, each for two
clocks: wall-clock time (what a user waits) and the CPU time of this process
(``time.process_time``), which other processes on a shared machine disturb much less. With
``--threads 1`` on a CPU the CPU-time ratio measures the loop's own work; on a GPU only
the wall-clock ratio means anything.

    python benchmarks/trainer_overhead.py [--rounds 15] [--examples 4000] [--batch-size 64]
        [--device cpu|cuda] [--amp bf16] [--channels-last] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bare_loop import bare_epoch, small_cnn

from course_lib.data import TensorLoader, load_dataset, subset
from course_lib.runtime import get_device, seed_everything
from course_lib.train import Trainer


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (1 epoch each)")
    parser.add_argument("--examples", type=int, default=4000, help="training examples per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: tiny nets gain nothing from more, and on a shared "
        "machine more threads than free cores make every timing noisy); 0 = torch's default",
    )  # fmt: skip
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else get_device()
    ds = subset(load_dataset("mnist5k", "trainval"), args.examples)
    amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    memory_format = torch.channels_last if args.channels_last else None

    def setup():
        seed_everything(0)
        model = small_cnn().to(device, memory_format=memory_format or torch.preserve_format)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, TensorLoader(ds, batch_size=args.batch_size, device=device, seed=0)

    bare_model, bare_opt, bare_loader = setup()
    bare_forward = torch.compile(bare_model) if args.compile else bare_model
    tr_model, tr_opt, tr_loader = setup()
    trainer = Trainer(
        tr_model, tr_opt, device=device, progress=False, amp=args.amp,
        channels_last=args.channels_last, compile=args.compile,
    )  # fmt: skip
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    if scaler.is_enabled():
        raise SystemExit("--amp fp16: the bare loop has no GradScaler; compare bf16 instead")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn) -> tuple[float, float]:
        """(wall-clock seconds, CPU seconds of this process) of ``fn()``."""
        sync()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        return time.perf_counter() - w0, time.process_time() - c0

    def time_bare() -> tuple[float, float]:
        return timed(
            lambda: bare_epoch(
                bare_forward, bare_opt, bare_loader, device, amp_dtype, memory_format
            )
        )

    def time_trainer(round_: int) -> tuple[float, float]:
        return timed(lambda: trainer.fit(tr_loader, epochs=round_ + 1))  # one more epoch

    bare_times, trainer_times = [], []
    for round_ in range(args.rounds + 1):
        # Alternate which loop goes first, so neither always runs on a warmer machine.
        if round_ % 2 == 0:
            b, t = time_bare(), time_trainer(round_)
        else:
            t, b = time_trainer(round_), time_bare()
        if round_ > 0:  # round 0 warms up both
            bare_times.append(b)
            trainer_times.append(t)
    n = len(ds)
    print(
        f"device {device} | threads {torch.get_num_threads()} | batch {args.batch_size} | "
        f"amp {args.amp} | channels_last {args.channels_last} | compile {args.compile} | "
        f"{args.rounds} timed rounds of one epoch ({n} examples) each"
    )
    for i, clock in enumerate(("wall-clock", "CPU time")):
        bare = [b[i] for b in bare_times]
        tr = [t[i] for t in trainer_times]
        ratios = [b / t for b, t in zip(bare, tr)]
        lo, hi = quartiles(ratios)
        print(
            f"{clock:10s}: bare {n / statistics.median(bare):7.0f} ex/s | Trainer "
            f"{n / statistics.median(tr):7.0f} ex/s | ratio trainer/bare: median "
            f"{statistics.median(ratios):.3f}, IQR {lo:.3f}-{hi:.3f}, "
            f"min-max {min(ratios):.3f}-{max(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
