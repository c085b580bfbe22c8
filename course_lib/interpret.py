"""Looking inside a CNN: activations, attributions, feature visualisation and circuits.

Teaching implementations, each a few lines of autograd, checked against Captum in
``tests/test_interpret.py``. Shapes: inputs ``x`` are ``(N, C, H, W)``; ``target`` is a class
index (``int``) or one index per example (``(N,)``); ``layer`` is a submodule of ``model``
(its forward output is what is read, hooked or zeroed).

=================================  ===========================================================
function                           what it returns
=================================  ===========================================================
:func:`activations`                a layer's output for a batch, ``(N, C, h, w)``
:func:`channel_responses`          one number per example and channel (max or mean over space)
:func:`ablate_channels`            context manager: the layer's chosen channels output zero
:func:`unit_input_gradient`        gradient of one unit w.r.t. the input (effective RF)
:func:`saliency`                   ``|d logit_t / d x|``, ``(N, C, H, W)``
:func:`integrated_gradients`       ``(x - x') * mean_k grad(x' + k/m (x - x'))`` (right rule)
:func:`grad_cam`                   ``ReLU(sum_c w_c A_c)``, ``w_c`` = mean gradient, ``(N, h, w)``
:func:`activation_maximisation`    an input that maximises one channel, with regularisers
:func:`randomise_weights`          a copy with the top ``n`` layers (or all) re-initialised
:func:`spearman`                   rank correlation of two maps (the sanity-check number)
:func:`gratings`                   oriented sine gratings, probe inputs for orientation units
=================================  ===========================================================

Every function leaves the model's mode (``train``/``eval``) alone: call ``model.eval()`` first
when the model has dropout or BatchNorm.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "activations",
    "channel_responses",
    "ablate_channels",
    "unit_input_gradient",
    "saliency",
    "integrated_gradients",
    "grad_cam",
    "activation_maximisation",
    "randomise_weights",
    "spearman",
    "gratings",
]

Target = int | Sequence[int] | Tensor


def _targets(target: Target, n: int, device: torch.device) -> Tensor:
    """Class indices as a ``(N,)`` long tensor (an ``int`` is repeated for every example)."""
    t = torch.as_tensor(target, dtype=torch.long, device=device)
    return t.expand(n) if t.dim() == 0 else t


def _target_logits(logits: Tensor, target: Target) -> Tensor:
    """``logits[i, target_i]`` summed over the batch: one backward gives every example's
    gradient, because example ``i``'s logit depends on example ``i``'s input only."""
    t = _targets(target, logits.shape[0], logits.device)
    return logits.gather(1, t[:, None]).sum()


@contextmanager
def _capture(layer: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Record ``layer``'s forward output in ``store["out"]`` while the context is open."""
    store: dict[str, Tensor] = {}

    def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        store["out"] = output

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


# ---------------------------------------------------------------------------
# Activations, feature maps, ablation
# ---------------------------------------------------------------------------


@torch.no_grad()
def activations(model: nn.Module, layer: nn.Module, x: Tensor) -> Tensor:
    """The output of ``layer`` when ``model(x)`` runs: ``(N, C, h, w)`` for a conv layer
    (its feature maps), ``(N, C)`` for a linear one."""
    with _capture(layer) as store:
        model(x)
    return store["out"].detach()


@torch.no_grad()
def channel_responses(
    model: nn.Module,
    layer: nn.Module,
    x: Tensor,
    reduce: Literal["max", "mean"] = "max",
    batch_size: int = 512,
) -> Tensor:
    """One response per example and channel of ``layer``: ``(N, C)``.

    ``reduce="max"``: the strongest response anywhere in the feature map,
    ``r[n, c] = max_{i,j} A[n, c, i, j]`` (a detector "fires" if the pattern is anywhere);
    ``"mean"``: the spatial average. Runs in batches of ``batch_size``.
    """
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    out = []
    for xb in x.split(batch_size):
        a = activations(model, layer, xb)
        a = a.flatten(2) if a.dim() > 2 else a.unsqueeze(2)
        out.append(a.amax(2) if reduce == "max" else a.mean(2))
    return torch.cat(out)


@contextmanager
def ablate_channels(layer: nn.Module, channels: int | Sequence[int]) -> Iterator[nn.Module]:
    """Zero ``channels`` of ``layer``'s output while the context is open.

    A forward hook returns a copy of the output with ``out[:, channels] = 0``; every layer after
    it sees the channel as silent. The hook is removed on exit, also after an exception::

        with ablate_channels(model.conv2, [3]):
            acc_without_3 = evaluate(model)
    """
    idx = [channels] if isinstance(channels, int) else list(channels)

    def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        output = output.clone()
        output[:, idx] = 0
        return output

    handle = layer.register_forward_hook(hook)
    try:
        yield layer
    finally:
        handle.remove()


def unit_input_gradient(
    model: nn.Module,
    layer: nn.Module,
    x: Tensor,
    channel: int | None = None,
    position: tuple[int, int] | None = None,
) -> Tensor:
    """Gradient of one unit of ``layer`` w.r.t. the input: ``d A[n, c, i, j] / d x``, ``(N, C, H, W)``.

    ``channel=None`` sums the channels (``sum_c A[n, c, i, j]``); ``position=None`` takes the
    centre ``(h // 2, w // 2)`` of the feature map. The pixels where the gradient is non-zero
    lie inside the unit's theoretical receptive field; how the gradient spreads inside it is
    the *effective* receptive field (usually a blob much smaller than the square).
    """
    x = x.detach().clone().requires_grad_(True)
    with _capture(layer) as store:
        model(x)
    a = store["out"]
    i, j = position if position is not None else (a.shape[2] // 2, a.shape[3] // 2)
    unit = a[:, :, i, j] if channel is None else a[:, channel : channel + 1, i, j]
    (grad,) = torch.autograd.grad(unit.sum(), x)
    return grad


# ---------------------------------------------------------------------------
# Attribution: saliency, integrated gradients, Grad-CAM
# ---------------------------------------------------------------------------


def saliency(model: nn.Module, x: Tensor, target: Target, abs: bool = True) -> Tensor:
    """Vanilla gradient saliency (Simonyan et al., 2014): ``S = |d f_t(x) / d x|``.

    ``f_t`` is the target class's logit (not its probability). Returns ``(N, C, H, W)``, the
    shape of ``x``; ``abs=False`` keeps the sign. Same as ``captum.attr.Saliency``.
    """
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_target_logits(model(x), target), x)
    return grad.abs() if abs else grad


def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    target: Target,
    baseline: Tensor | float | None = None,
    steps: int = 50,
    batch_size: int = 512,
) -> Tensor:
    """Integrated gradients (Sundararajan et al., 2017) with the right Riemann rule.

    ``IG(x) = (x - x') * integral_0^1 grad f_t(x' + a (x - x')) da``, approximated with the
    *right* Riemann sum over ``a_k = k / m``, ``k = 1..m`` (``m = steps``), each of weight
    ``1/m``: ``IG ~ (x - x') * (1/m) sum_k grad f_t(x' + a_k (x - x'))``. This is
    ``captum.attr.IntegratedGradients(...).attribute(..., method="riemann_right")`` (Captum's
    default is Gauss-Legendre). ``baseline`` ``x'``: a tensor like ``x``, a number, or ``None``
    for zeros (a black image). Completeness: ``IG.sum() ~ f_t(x) - f_t(x')`` for each example,
    more exactly as ``steps`` grows. Returns ``(N, C, H, W)``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = x.detach()
    if baseline is None:
        base = torch.zeros_like(x)
    elif isinstance(baseline, (int, float)):
        base = torch.full_like(x, float(baseline))
    else:
        base = baseline.detach().expand_as(x)
    t = _targets(target, x.shape[0], x.device)
    alphas = torch.arange(1, steps + 1, dtype=x.dtype, device=x.device) / steps
    # all interpolated inputs of all examples in one batch: (steps * N, C, H, W), alpha-major
    path = base[None] + alphas.view(-1, 1, 1, 1, 1) * (x - base)[None]
    path, t_path = path.flatten(0, 1), t.repeat(steps)
    grads = torch.cat(
        [
            saliency(model, pb, tb, abs=False)
            for pb, tb in zip(path.split(batch_size), t_path.split(batch_size))
        ]
    )
    mean_grad = grads.view(steps, *x.shape).mean(0)
    return (x - base) * mean_grad


def grad_cam(
    model: nn.Module,
    layer: nn.Module,
    x: Tensor,
    target: Target,
    upsample: Literal["none", "nearest", "bilinear"] = "none",
) -> Tensor:
    """Grad-CAM (Selvaraju et al., 2017) at ``layer``'s resolution: ``(N, h, w)``.

    With ``A`` the layer's output ``(N, K, h, w)`` and ``f_t`` the target logit:
    ``w_k = (1 / hw) sum_{i,j} d f_t / d A[k, i, j]`` (one weight per channel, the averaged
    gradient) and ``L = ReLU(sum_k w_k A_k)``. Same as
    ``captum.attr.LayerGradCam(model, layer).attribute(x, t, relu_attributions=True)``
    without its channel axis. ``upsample="nearest"`` or ``"bilinear"`` resizes the map to the
    input's ``(H, W)`` (what is overlaid on the image). For a network that ends in global
    average pooling and one linear layer, ``w_k`` is the linear weight ``W[t, k] / (hw)``
    and Grad-CAM is the class activation map (CAM) of that layer.
    """
    if upsample not in ("none", "nearest", "bilinear"):
        raise ValueError(f"upsample must be 'none', 'nearest' or 'bilinear', got {upsample!r}")
    with _capture(layer) as store:
        logits = model(x.detach())
    a = store["out"]
    (grad,) = torch.autograd.grad(_target_logits(logits, target), a)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    cam = F.relu((weights * a).sum(1)).detach()  # (N, h, w)
    if upsample != "none":
        kwargs = {"align_corners": False} if upsample == "bilinear" else {}
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode=upsample, **kwargs)[:, 0]
    return cam


# ---------------------------------------------------------------------------
# Feature visualisation
# ---------------------------------------------------------------------------


def _fourier_scale(h: int, w: int, decay: float = 1.0) -> Tensor:
    """``1 / max(|f|, 1/max(h, w)) ** decay`` for the frequencies of ``rfft2`` on ``(h, w)``:
    every frequency gets about the same energy in the image (a ``1/f`` spectrum, like photos)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freq = torch.sqrt(fx**2 + fy**2)
    return 1.0 / torch.clamp(freq, min=1.0 / max(h, w)) ** decay


def _gaussian_blur(img: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with reflect padding (radius ``ceil(3 sigma)``)."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(
        -(torch.arange(-r, r + 1, dtype=img.dtype, device=img.device) ** 2) / (2 * sigma**2)
    )
    k = k / k.sum()
    c = img.shape[1]
    img = F.pad(img, (r, r, r, r), mode="reflect")
    img = F.conv2d(img, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(img, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def activation_maximisation(
    model: nn.Module,
    layer: nn.Module,
    channel: int,
    steps: int = 256,
    lr: float = 0.05,
    jitter: int = 0,
    blur_every: int = 0,
    sigma: float = 0.5,
    decorrelate: bool = False,
    seed: int = 0,
    shape: tuple[int, int, int] = (1, 28, 28),
    position: tuple[int, int] | None = None,
) -> Tensor:
    """An input that maximises channel ``channel`` of ``layer`` (feature visualisation).

    Gradient ascent with Adam on ``J(x) = mean_{i,j} A[0, channel, i, j]`` (for a 2-D output such
    as the logits: ``A[0, channel]``; with ``position=(i, j)`` the single unit there). The image
    is ``x = sigmoid(p)``, so pixels stay in ``(0, 1)`` like the training data; the parameters
    ``p`` are either the pixels themselves (``decorrelate=False``) or, with
    ``decorrelate=True``, a Fourier spectrum scaled by ``1/f``: ``p = irfft2(s * P)``, so a step
    changes all frequencies about equally instead of favouring pixel-level noise.

    Regularisers (all off by default: that is the *plain* version, which finds high-frequency
    noise the network happens to respond to):

    - ``jitter``: each step shifts the image by a random ``(dy, dx)`` in
      ``[-jitter, jitter]`` (circular roll) before the forward pass, so the pattern must work
      at several positions;
    - ``blur_every``, ``sigma``: every ``blur_every`` steps the parameters are replaced by a
      Gaussian-blurred copy (pixel parametrisation only), which removes high frequencies.

    ``seed`` fixes the initial noise and the jitter. Returns the image ``(1, *shape)``, detached.
    """
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    c, h, w = shape
    if decorrelate:
        scale = _fourier_scale(h, w).to(device)
        param = (0.01 * torch.randn(1, c, h, w // 2 + 1, 2, generator=gen)).to(device)
    else:
        param = (0.01 * torch.randn(1, c, h, w, generator=gen)).to(device)
    param.requires_grad_(True)
    opt = torch.optim.Adam([param], lr=lr)

    def image() -> Tensor:
        if decorrelate:
            spectrum = torch.view_as_complex(param) * scale
            return torch.sigmoid(torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") * 4)
        return torch.sigmoid(param)

    for step in range(steps):
        img = image()
        if jitter:
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
            img = torch.roll(img, shifts=(dy, dx), dims=(2, 3))
        with _capture(layer) as store:
            model(img)
        a = store["out"][0, channel]
        if position is not None:
            a = a[position]
        loss = -a.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if blur_every and not decorrelate and (step + 1) % blur_every == 0:
            with torch.no_grad():
                param.copy_(_gaussian_blur(param, sigma))
    with torch.no_grad():
        return image().detach()


# ---------------------------------------------------------------------------
# Sanity checks and probes
# ---------------------------------------------------------------------------


def _weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutions and linear layers of ``model`` (modules whose own ``weight`` is at least
    2-D and that can ``reset_parameters()``), in registration (forward) order."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if hasattr(m, "reset_parameters")
        and isinstance(getattr(m, "weight", None), torch.Tensor)
        and m.weight.dim() >= 2
    ]


def randomise_weights(model: nn.Module, seed: int = 0, n_layers: int | None = None) -> nn.Module:
    """A copy of ``model`` with re-initialised weights (the model parameter randomisation test of
    Adebayo et al., 2018). ``model`` itself is unchanged.

    The layers are the convolutions and linear layers in forward order. ``n_layers=None``:
    all of them are re-initialised (full randomisation); ``n_layers=k``: only the last ``k``,
    counted from the output (*cascading* randomisation: ``k = 1, 2, ...`` destroys the network
    from the top down). Each gets PyTorch's default initialisation (``reset_parameters()``,
    weight and bias) from a generator seeded ``seed``. Normalisation layers keep their
    parameters and running statistics. An attribution method that explains the *trained*
    model must give clearly different maps afterwards.
    """
    layers = _weight_layers(model)
    k = len(layers) if n_layers is None else n_layers
    if not 0 <= k <= len(layers):
        raise ValueError(f"n_layers must lie in 0..{len(layers)}, got {n_layers}")
    copy_ = copy.deepcopy(model)
    modules = dict(copy_.named_modules())
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for name, _ in layers[len(layers) - k :]:
            modules[name].reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    return copy_


def _ranks(v: Tensor) -> Tensor:
    """Average ranks (ties share the mean of their positions), 1-based, of a 1-D tensor."""
    v = v.double()
    order = torch.argsort(v, stable=True)
    sorted_v = v[order]
    ranks = torch.empty_like(v)
    ranks[order] = torch.arange(1, len(v) + 1, dtype=torch.float64)
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2  # mean of positions end-count+1 .. end
    ranks[order] = mean_rank[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> float | Tensor:
    """Spearman rank correlation of two maps: the Pearson correlation of their ranks.

    ``a`` and ``b`` have the same shape. One map (``dim <= 3``: ``(H, W)``, ``(C, H, W)`` or
    a 1-D selection of pixels) gives a float; a batch ``(N, C, H, W)`` gives one value per
    map, ``(N,)``. Ties get average ranks (as ``scipy.stats.spearmanr``); a constant map has
    no ranking and gives ``nan``. Near 1: both maps order the pixels alike; near 0: unrelated.
    """
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() == 4:
        return torch.tensor([float(spearman(ai, bi)) for ai, bi in zip(a, b)])
    ra, rb = _ranks(a.flatten().detach().cpu()), _ranks(b.flatten().detach().cpu())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra @ rb) / (ra.norm() * rb.norm()))


def gratings(
    size: int = 28,
    angles: Sequence[float] = (0, 45, 90, 135),
    wavelength: float = 6.0,
    phases: int = 4,
) -> Tensor:
    """Oriented sine gratings in ``[0, 1]``: ``(len(angles) * phases, 1, size, size)``.

    ``g(u, v) = 0.5 + 0.5 cos(2 pi (u cos t + v sin t) / wavelength + phi)`` with the angle
    ``t`` in degrees (0 = the intensity changes along x: vertical stripes) and ``phases``
    evenly spaced phases ``phi``; images are ordered angle-major (all phases of the first
    angle first). A unit that responds to one orientation responds to its gratings at every
    phase.
    """
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    v, u = torch.meshgrid(coords, coords, indexing="ij")
    out = []
    for angle in angles:
        t = math.radians(angle)
        for k in range(phases):
            phi = 2 * math.pi * k / phases
            along = u * math.cos(t) + v * math.sin(t)  # the coordinate across the stripes
            out.append(0.5 + 0.5 * torch.cos(2 * math.pi * along / wavelength + phi))
    return torch.stack(out)[:, None]
