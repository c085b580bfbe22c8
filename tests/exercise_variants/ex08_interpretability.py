"""Round-trip variants for ex08_interpretability (see course_lib/grading/README.md, "Variants")."""

# signed gradient: forgets the absolute value
SALIENCY_SIGNED = """
def saliency(model, x, target):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x)
    return grad
"""

SALIENCY_CALLS_LIBRARY = """
from course_lib.interpret import saliency as _lib_saliency

def saliency(model, x, target):
    return _lib_saliency(model, x, target)
"""

# left Riemann sum (alpha = 0, ..., (m-1)/m): includes the baseline, misses x itself
IG_LEFT_RIEMANN = """
def integrated_gradients(model, x, target, baseline=None, steps=32):
    x = x.detach()
    base = torch.zeros_like(x) if baseline is None else baseline.detach()
    total = torch.zeros_like(x)
    for k in range(steps):
        point = (base + (k / steps) * (x - base)).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(point).gather(1, target.view(-1, 1)).sum(), point)
        total += grad
    return (x - base) * total / steps
"""

# ignores the baseline argument (always zeros): right for the zero-baseline tests only
IG_IGNORES_BASELINE = IG_LEFT_RIEMANN.replace(
    "torch.zeros_like(x) if baseline is None else baseline.detach()", "torch.zeros_like(x)"
).replace("for k in range(steps):", "for k in range(1, steps + 1):")

# no ReLU: equal where the weighted sum is positive, wrong where it is negative
CAM_NO_RELU = """
def grad_cam(model, layer, x, target):
    store = {}
    handle = layer.register_forward_hook(lambda m, i, out: store.update(a=out))
    logits = model(x.detach())
    handle.remove()
    a = store["a"]
    (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), a)
    return (grad.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1).detach()
"""

CAM_CALLS_LIBRARY = """
import course_lib.interpret

def grad_cam(model, layer, x, target):
    return course_lib.interpret.grad_cam(model, layer, x, target)
"""

# returns nothing from the hook and edits nothing: no ablation at all
ABLATE_NOOP = """
def ablate_channels(layer, channels):
    def hook(module, inputs, out):
        out[:, list(channels)] * 0
    return layer.register_forward_hook(hook)
"""

# the library's context manager captured in a default argument (a decorated target:
# the guard follows ``__wrapped__`` to the generator function that does the work)
ABLATE_CAPTURED = """
import types
import course_lib.interpret

def ablate_channels(layer, channels, _cm=course_lib.interpret.ablate_channels):
    cm = _cm(layer, channels)
    cm.__enter__()
    return types.SimpleNamespace(remove=lambda: cm.__exit__(None, None, None))
"""

VARIANTS = {
    "saliency_signed": {
        "answers": {"saliency": SALIENCY_SIGNED},
        "expect": {"test_saliency_visible": 0, "test_saliency_hidden": 0},
    },
    "saliency_calls_library": {
        "answers": {"saliency": SALIENCY_CALLS_LIBRARY},
        "expect": {"test_saliency_visible": 0, "test_saliency_hidden": 0},
    },
    "ig_left_riemann": {
        "answers": {"integrated_gradients": IG_LEFT_RIEMANN},
        "expect": {
            "test_integrated_gradients_visible": 0,
            "test_integrated_gradients_hidden": 0,
            "test_integrated_gradients_baseline": 0,
        },
    },
    "ig_ignores_baseline": {
        "answers": {"integrated_gradients": IG_IGNORES_BASELINE},
        "expect": {"test_integrated_gradients_baseline": 0},
    },
    "cam_no_relu": {
        "answers": {"grad_cam": CAM_NO_RELU},
        "expect": {"test_grad_cam_visible": 0, "test_grad_cam_hidden": 0, "test_grad_cam_layer": 0},
    },
    "cam_calls_library": {
        "answers": {"grad_cam": CAM_CALLS_LIBRARY},
        "expect": {"test_grad_cam_visible": 0, "test_grad_cam_hidden": 0, "test_grad_cam_layer": 0},
    },
    "ablate_noop": {
        "answers": {"ablate_channels": ABLATE_NOOP},
        "expect": {
            "test_ablate_channels_visible": 0,
            "test_ablate_channels_hidden": 0,
            "test_ablate_channels_remove": 0,
        },
    },
    "ablate_captured": {
        "answers": {"ablate_channels": ABLATE_CAPTURED},
        "expect": {
            "test_ablate_channels_visible": 0,
            "test_ablate_channels_hidden": 0,
            "test_ablate_channels_remove": 0,
        },
    },
}
