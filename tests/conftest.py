"""Shared test set-up: headless Matplotlib, small thread counts, GPU-marker skipping."""

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("COURSE_OFFLINE", "1")  # tests never touch the network
torch.set_num_threads(1)  # tiny models on a 2-core CI machine: one thread is fastest


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
