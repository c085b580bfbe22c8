"""Transfer learning with few labels: reuse a trained network's body on a new task.

A classifier is split into a **body** (everything up to its head) and a **head** (the layers
after the body's last feature map, ending in the output layer). Three strategies for a new task
with ``k`` labelled examples per class, compared at a fixed number of optimisation steps:

* ``"head only"`` - freeze the pre-trained body, compute its features once
  (:func:`frozen_features`) and train a freshly initialised head on them (:func:`fresh_head`);
* ``"whole network"`` - start from the pre-trained weights, replace only the output layer
  (:func:`replace_output_layer`) and train every layer;
* ``"from scratch"`` - the same architecture from a random initialisation.

:func:`few_shot_run` runs one strategy for one ``k`` and one seed. The models are expected to
call their head as one attribute (``head="classifier"`` for
:class:`~course_lib.models.convnet.SmallConvNet`, ``"fc"`` for torchvision's ResNets) that is an
``nn.Linear`` or an ``nn.Sequential`` ending in one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from course_lib.data import ArrayDataset, TensorLoader, subset
from course_lib.runtime import get_device, seed_everything
from course_lib.train import Trainer

__all__ = ["Strategy", "frozen_features", "fresh_head", "replace_output_layer", "few_shot_run"]

Strategy = Literal["head only", "whole network", "from scratch"]


@torch.no_grad()
def frozen_features(
    model: nn.Module, x: Tensor, head: str = "classifier", batch_size: int = 1000
) -> Tensor:
    """The body's output for ``x`` ``(N, ...)``: ``model`` with its head replaced by the identity.

    Runs a copy of ``model`` in evaluation mode (BatchNorm with its running statistics, no
    dropout) without gradients, ``batch_size`` examples at a time; ``model`` is not changed.
    For ``SmallConvNet`` the result is the pooled feature map ``(N, width, 2, 2)``.
    """
    body = copy.deepcopy(model).to(x.device).eval()
    setattr(body, head, nn.Identity())
    return torch.cat([body(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def fresh_head(head: nn.Module, num_classes: int) -> nn.Module:
    """A newly initialised module of ``head``'s architecture with ``num_classes`` outputs.

    ``head`` is an ``nn.Linear`` or an ``nn.Sequential`` whose last ``nn.Linear`` is the output
    layer. Every ``nn.Linear`` is rebuilt in order (the same random draws as writing the
    layers out by hand); layers without parameters (``Flatten``, ``ReLU``, ``Dropout``) are
    kept.
    """
    if isinstance(head, nn.Linear):
        return nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
    if not isinstance(head, nn.Sequential):
        raise TypeError(f"head must be nn.Linear or nn.Sequential, got {type(head).__name__}")
    last = max(i for i, m in enumerate(head) if isinstance(m, nn.Linear))
    layers: list[nn.Module] = []
    for i, m in enumerate(head):
        if isinstance(m, nn.Linear):
            out = num_classes if i == last else m.out_features
            layers.append(nn.Linear(m.in_features, out, bias=m.bias is not None))
        elif any(True for _ in m.parameters()):
            raise TypeError(f"fresh_head only rebuilds nn.Linear layers, not {type(m).__name__}")
        else:
            layers.append(copy.deepcopy(m))
    return nn.Sequential(*layers)


def replace_output_layer(model: nn.Module, num_classes: int, head: str = "classifier") -> None:
    """Replace the last ``nn.Linear`` of ``model.<head>`` by a new one with ``num_classes`` outputs.

    In place; the rest of the head (e.g. a hidden linear layer) keeps its weights.
    """
    module = getattr(model, head)
    if isinstance(module, nn.Linear):
        setattr(model, head, fresh_head(module, num_classes))
        return
    last = max(i for i, m in enumerate(module) if isinstance(m, nn.Linear))
    module[last] = fresh_head(module[last], num_classes)


def few_shot_run(
    strategy: Strategy,
    pretrained: nn.Module,
    make_model: Callable[[], nn.Module],
    pool: ArrayDataset,
    test: ArrayDataset,
    *,
    k: int,
    seed: int,
    steps: int,
    lr: float = 1e-3,
    head_lr: float = 1e-2,
    batch_size: int = 32,
    head: str = "classifier",
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Train one strategy on ``k`` labelled examples per class of ``pool``; score it on ``test``.

    ``seed`` seeds everything and draws the labelled examples (``subset(pool, K k, seed)``,
    stratified, ``K = len(pool.classes)``) and their order. ``make_model()`` builds the
    architecture of ``pretrained`` with ``K`` outputs. ``"head only"`` trains
    ``fresh_head(pretrained.<head>)`` on :func:`frozen_features` with Adam at ``head_lr``;
    ``"whole network"`` loads ``pretrained``'s weights into ``make_model()``, replaces the output
    layer and trains everything with Adam at ``lr``; ``"from scratch"`` trains ``make_model()``
    at ``lr``. ``pretrained`` is never changed. Training runs whole epochs of ``batch_size``
    until at least ``steps`` optimisation steps are done: ``ceil(steps / B) * B`` steps for
    ``B = ceil(K k / batch_size)`` batches per epoch.

    Returns ``{"test acc": ..., "steps": ...}``.
    """
    device = get_device(device)
    seed_everything(seed)
    num_classes = len(pool.classes)
    data = subset(pool, num_classes * k, seed=seed)
    x_tr, x_te = data.x.to(device), test.x.to(device)
    if strategy == "head only":  # the frozen body runs once; only the new head trains
        x_tr, x_te = (frozen_features(pretrained, x, head) for x in (x_tr, x_te))
        model, rate = fresh_head(getattr(pretrained, head), num_classes), head_lr
    elif strategy in ("whole network", "from scratch"):
        model, rate = make_model(), lr
        if strategy == "whole network":
            model.load_state_dict(pretrained.state_dict())
            replace_output_layer(model, num_classes, head)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    loader = TensorLoader(x_tr, data.y.to(device), batch_size=batch_size, seed=seed)
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=rate), device=device)
    epochs = math.ceil(steps / len(loader))
    trainer.fit(loader, epochs=epochs)
    test_loader = TensorLoader(x_te, test.y.to(device), batch_size=500, shuffle=False)
    return {"test acc": trainer.evaluate(test_loader)["acc"], "steps": float(epochs * len(loader))}
