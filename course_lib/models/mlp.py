"""Multi-layer perceptron: flatten the input, then ``Linear -> [BatchNorm] -> activation ->
[Dropout]`` per hidden layer and a final ``Linear`` to the class scores.

The default widths are the CIFAR-10 baseline of the review lecture:
``3072 -> 512 -> 120 -> 84 -> 10`` = 1,645,950 parameters (compare: the 17,020-parameter
BatchNorm ConvNet of :func:`course_lib.models.small_convnet`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["MLP", "mlp", "ACTIVATIONS"]

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
