"""Multi-layer perceptron: flatten the input, then ``Linear -> [BatchNorm] -> activation ->
[Dropout]`` per hidden layer and a final ``Linear`` to the class scores.

The default widths are the CIFAR-10 baseline of the review lecture:
``3072 -> 512 -> 120 -> 84 -> 10`` = 1,645,950 parameters (compare: the 17,020-parameter
BatchNorm ConvNet of :func:`course_lib.models.small_convnet`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MLP", "mlp", "ACTIVATIONS", "BatchedMLP", "fit_batched", "count_linear_regions"]

#: Activation names accepted by :class:`MLP`.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


class MLP(nn.Module):
    """``(N, *) -> flatten -> (N, in_features) -> ... -> (N, num_classes)``.

    ``hidden`` lists the hidden widths (``()`` gives logistic/softmax regression);
    ``activation`` is a name from :data:`ACTIVATIONS` or an ``nn.Module`` class;
    ``batch_norm`` inserts ``BatchNorm1d`` before each activation; ``dropout`` is applied
    after each hidden activation.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 10,
        hidden: Sequence[int] = (512, 120, 84),
        activation: str | type[nn.Module] = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
                )
            activation = ACTIVATIONS[activation]
        self.in_features = in_features
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        features = x[0].numel() if x.dim() > 1 else x.numel()
        if x.dim() < 2 or features != self.in_features:
            raise ValueError(
                f"MLP expects input of shape (N, *) with {self.in_features} values per example "
                f"(e.g. (N, {self.in_features})), got {tuple(x.shape)}"
            )
        return self.net(x)


def mlp(
    in_features: int = 3 * 32 * 32,
    num_classes: int = 10,
    hidden: Sequence[int] = (512, 120, 84),
    activation: str | type[nn.Module] = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> MLP:
    """Build an :class:`MLP`; defaults give the 1,645,950-parameter CIFAR-10 baseline.

    For 1x28x28 images pass ``in_features=784``.
    """
    return MLP(in_features, num_classes, hidden, activation, dropout, batch_norm)


class BatchedMLP(nn.Module):
    """``R`` independent ReLU MLPs ``d_in -> h -> ... -> h -> d_out`` evaluated in one batch.

    Replica ``r`` computes ``x @ W_r + b_r`` layer by layer (ReLU between layers), so a sweep
    over seeds or resampled training sets trains in one matrix product instead of ``R``.
    Weights start uniform in ``±1/sqrt(fan_in)`` (like ``nn.Linear``'s bias).

    Input ``(n, d_in)`` (shared by all replicas) or ``(R, n, d_in)``; output ``(R, n, d_out)``.
    """

    def __init__(self, replicas: int, d_in: int, hidden: int, d_out: int, depth: int = 1) -> None:
        super().__init__()
        dims = [d_in] + [hidden] * depth + [d_out]
        pairs = list(zip(dims, dims[1:]))
        self.w = nn.ParameterList(
            nn.Parameter((torch.rand(replicas, a, b) * 2 - 1) / a**0.5) for a, b in pairs
        )
        self.b = nn.ParameterList(
            nn.Parameter((torch.rand(replicas, 1, b) * 2 - 1) / a**0.5) for a, b in pairs
        )

    def forward(self, x: Tensor) -> Tensor:
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            x = x @ w + b
            x = torch.relu(x) if i < len(self.w) - 1 else x
        return x


def fit_batched(
    model: BatchedMLP, x: Tensor, y: Tensor, steps: int, loss: str = "mse", lr: float = 1e-2
) -> BatchedMLP:
    """Full-batch Adam on every replica at once; returns ``model``.

    ``loss="mse"``: targets ``y`` of shape ``(n, d_out)`` or ``(R, n, d_out)``.
    ``loss="ce"``: class labels ``y`` of shape ``(n,)``, shared by all replicas.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        out = model(x)
        if loss == "mse":
            err = F.mse_loss(out, y.expand_as(out))
        else:
            err = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(out.shape[0]))
        opt.zero_grad()
        err.backward()
        opt.step()
    return model


def count_linear_regions(
    model: BatchedMLP, lo: float = -1.0, hi: float = 1.0, n: int = 100_000
) -> int:
    """Pieces of ``[lo, hi]`` on which replica 0 of a 1-D-input ReLU MLP is linear.

    A grid estimate: the number of places where the on/off pattern of the hidden ReLUs
    changes between neighbouring grid points, plus one. Regions narrower than the grid
    spacing ``(hi - lo) / (n - 1)`` can be missed.
    """
    h = torch.linspace(lo, hi, n)[:, None]
    pattern = []
    with torch.no_grad():
        for w, b in list(zip(model.w, model.b))[:-1]:
            h = h @ w[0] + b[0][0]
            pattern.append(h > 0)
            h = torch.relu(h)
    on = torch.cat(pattern, dim=1)
    return 1 + int((on[1:] != on[:-1]).any(dim=1).sum())
