"""Helpers shared by the model tests that compare our constructors with torchvision's.

``meta_count`` counts parameters on the meta device (no memory, fast even for VGG);
``torchvision_twin`` builds torchvision's model with non-trivial BatchNorm statistics (so that a
misplaced BN shows in the outputs) and copies its weights into ours position by position, since
the parameter names differ while the order and shapes must not.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models import count_parameters

META = torch.device("meta")


def meta_count(builder, *args, **kwargs) -> int:
    """Count parameters without allocating them."""
    with META:
        return count_parameters(builder(*args, **kwargs))


def load_in_order(target: nn.Module, source: nn.Module) -> None:
    """Copy ``source``'s state_dict into ``target`` position by position (names differ)."""
    ours, theirs = target.state_dict(), source.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    target.load_state_dict(dict(zip(ours, theirs.values())))


def torchvision_twin(
    ours: nn.Module, theirs: nn.Module, seed: int = 0
) -> tuple[nn.Module, nn.Module]:
    """``(ours, theirs)`` in eval mode, ours holding theirs' weights and randomised BN statistics."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    load_in_order(ours, theirs)
    return ours.eval(), theirs.eval()
