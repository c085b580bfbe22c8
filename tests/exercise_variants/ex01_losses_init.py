"""Round-trip variants of ex01_losses_init (see course_lib/grading/README.md, "Variants").

Each variant starts from the reference solution, replaces the named answer cells and lists the
exact points of the test cells it should lose; every other test cell keeps full points.
"""

VARIANTS = {
    # subtly wrong: no max subtraction -> nan for extreme scores, fine otherwise
    "naive_softmax": {
        "answers": {
            "softmax": "def softmax(x, dim=-1):\n    e = torch.exp(x)\n    return e / e.sum(dim=dim, keepdim=True)\n"
        },
        "expect": {"test_softmax_stable": 0},
    },
    # subtly wrong: log(softmax) underflows to -inf for extreme scores (and so does cross-entropy)
    "log_of_softmax": {
        "answers": {
            "log_softmax": "def log_softmax(x, dim=-1):\n    return torch.log(softmax(x, dim=dim))\n"
        },
        "expect": {"test_log_softmax_stable": 0, "test_cross_entropy_stable": 0},
    },
    # subtly wrong: torch's multi_margin_loss convention divides by the number of classes
    "hinge_divided_by_classes": {
        "answers": {
            "multiclass_hinge_loss": (
                "def multiclass_hinge_loss(scores, targets, margin=1.0, reduction='mean'):\n"
                "    n, c = scores.shape\n"
                "    true = scores[torch.arange(n), targets].unsqueeze(1)\n"
                "    m = (scores - true + margin).clamp(min=0)\n"
                "    m[torch.arange(n), targets] = 0\n"
                "    losses = m.sum(dim=1) / c\n"
                "    return {'mean': losses.mean(), 'sum': losses.sum(), 'none': losses}[reduction]\n"
            )
        },
        "expect": {"test_hinge_visible": 0, "test_hinge_hidden": 0},
    },
    # subtly wrong: uniform weights with the right standard deviation are not normal
    "kaiming_uniform": {
        "answers": {
            "kaiming": (
                "def kaiming_std(fan_in, gain=math.sqrt(2.0)):\n"
                "    if fan_in < 1:\n        raise ValueError('fan_in must be positive')\n"
                "    return gain / math.sqrt(fan_in)\n\n"
                "def kaiming_normal(shape, fan_in, gain=math.sqrt(2.0), generator=None):\n"
                "    bound = math.sqrt(3.0) * kaiming_std(fan_in, gain)\n"
                "    return (torch.rand(*shape, generator=generator) * 2 - 1) * bound\n"
            )
        },
        "expect": {"test_kaiming_normal_hidden": 0},
    },
    # calls the reference: F.softmax is forbidden
    "calls_F_softmax": {
        "answers": {
            "softmax": "import torch.nn.functional as F\n\ndef softmax(x, dim=-1):\n    return F.softmax(x, dim=dim)\n"
        },
        "expect": {"test_softmax_visible": 0, "test_softmax_hidden": 0, "test_softmax_stable": 0},
    },
    # calls the reference through a name captured at import time (caught at dispatch level);
    # cross_entropy builds on it, so it loses its points too
    "captured_log_softmax": {
        "answers": {
            "log_softmax": (
                "from torch.nn.functional import log_softmax as _ls\n\n"
                "def log_softmax(x, dim=-1):\n    return _ls(x, dim=dim)\n"
            )
        },
        "expect": {
            "test_log_softmax_visible": 0,
            "test_log_softmax_hidden": 0,
            "test_log_softmax_stable": 0,
            "test_cross_entropy_visible": 0,
            "test_cross_entropy_hidden": 0,
            "test_cross_entropy_stable": 0,
        },
    },
    # calls the reference: F.cross_entropy
    "calls_F_cross_entropy": {
        "answers": {
            "cross_entropy": (
                "import torch.nn.functional as F\n\n"
                "def cross_entropy(logits, targets, reduction='mean'):\n"
                "    return F.cross_entropy(logits, targets, reduction=reduction)\n"
            )
        },
        "expect": {
            "test_cross_entropy_visible": 0,
            "test_cross_entropy_hidden": 0,
            "test_cross_entropy_stable": 0,
        },
    },
    # calls the reference: nn.init.kaiming_normal_
    "calls_kaiming_normal_": {
        "answers": {
            "kaiming": (
                "def kaiming_std(fan_in, gain=math.sqrt(2.0)):\n"
                "    if fan_in < 1:\n        raise ValueError('fan_in must be positive')\n"
                "    return gain / math.sqrt(fan_in)\n\n"
                "def kaiming_normal(shape, fan_in, gain=math.sqrt(2.0), generator=None):\n"
                "    w = torch.empty(shape)\n"
                "    torch.nn.init.kaiming_normal_(w, nonlinearity='relu', generator=generator)\n"
                "    return w * gain / math.sqrt(2.0) * math.sqrt(w[0].numel()) / math.sqrt(fan_in)\n"
            )
        },
        "expect": {"test_kaiming_visible": 0, "test_kaiming_normal_hidden": 0},
    },
}
