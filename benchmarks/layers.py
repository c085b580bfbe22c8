"""Speed of the teaching convolutions in course_lib.layers against torch's own conv2d.

Run:  .venv/bin/python benchmarks/layers.py   (a few seconds on a laptop CPU)

Prints the median time per call of
- ``F.conv2d`` (torch's optimised kernel) and ``course_lib.layers.conv2d`` (im2col + matmul)
  on a CIFAR-sized batch, forward only and forward + backward, and
- ``course_lib.layers.conv2d_loops`` (explicit Python loops) on a tiny input,
each with the ratio "ours / torch" measured side by side in the same run.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.layers import conv2d, conv2d_loops


def median_times(fns: list[Callable[[], object]], repeats: int, warmup: int = 1) -> list[float]:
    """Median seconds per call of each function, calls interleaved (fair under varying load)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def forward_backward(conv, x, w, b, **kw) -> Callable[[], None]:
    def run() -> None:
        xg, wg, bg = (t.detach().requires_grad_(True) for t in (x, w, b))
        conv(xg, wg, bg, **kw).sum().backward()

    return run


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip

    # CIFAR-sized layer: batch 32, 32 -> 64 channels, 32x32 pixels, 3x3 kernel, padding 1
    x = torch.randn(32, 32, 32, 32)
    w = torch.randn(64, 32, 3, 3)
    b = torch.randn(64)
    assert torch.allclose(conv2d(x, w, b, padding=1), F.conv2d(x, w, b, padding=1), atol=1e-3)
    t_torch, t_ours = median_times(
        [lambda: F.conv2d(x, w, b, padding=1), lambda: conv2d(x, w, b, padding=1)], repeats=9
    )
    print(f"forward  (32, 32, 32, 32) * (64, 32, 3, 3): torch {t_torch * 1e3:8.2f} ms   "
          f"unfold {t_ours * 1e3:8.2f} ms")  # fmt: skip
    print(f"ratio unfold/torch: {t_ours / t_torch:.2f}")

    t_torch_fb, t_ours_fb = median_times(
        [
            forward_backward(F.conv2d, x, w, b, padding=1),
            forward_backward(conv2d, x, w, b, padding=1),
        ],
        repeats=5,
    )
    print(f"forward+backward:                           torch {t_torch_fb * 1e3:8.2f} ms   "
          f"unfold {t_ours_fb * 1e3:8.2f} ms")  # fmt: skip
    print(f"ratio unfold/torch (forward+backward): {t_ours_fb / t_torch_fb:.2f}")

    # tiny input for the loop version: batch 2, 3 -> 8 channels, 16x16 pixels
    xs = torch.randn(2, 3, 16, 16)
    ws = torch.randn(8, 3, 3, 3)
    bs = torch.randn(8)
    # measured one after the other: interleaving Python-heavy loops with tiny torch calls
    # lets torch's worker threads fall asleep and adds their wake-up time to every call
    (t_torch_s,) = median_times([lambda: F.conv2d(xs, ws, bs, padding=1)], repeats=50)
    (t_unfold_s,) = median_times([lambda: conv2d(xs, ws, bs, padding=1)], repeats=50)
    (t_loops,) = median_times([lambda: conv2d_loops(xs, ws, bs, padding=1)], repeats=5)
    print(f"forward  (2, 3, 16, 16) * (8, 3, 3, 3):     torch {t_torch_s * 1e3:8.3f} ms   "
          f"unfold {t_unfold_s * 1e3:8.3f} ms   loops {t_loops * 1e3:8.1f} ms")  # fmt: skip
    print(f"ratio loops/torch: {t_loops / t_torch_s:.0f}")


if __name__ == "__main__":
    main()
