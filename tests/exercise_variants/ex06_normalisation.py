"""Round-trip variants for ex06_normalisation (see course_lib/grading/README.md, "Variants")."""

_BN_TEMPLATE = """
class BatchNorm(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        shape = (1, -1) if x.dim() == 2 else (1, -1, 1, 1)
        if self.training:
            m = x.numel() // x.shape[1]
            if m < 2:
                raise ValueError("one value per channel")
            mean = x.mean(dim=dims)
            unbiased = x.var(dim=dims, unbiased=True)
            var = NORMALISE_WITH
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * RUNNING_WITH)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)
"""

# normalises with the unbiased variance (divides by m - 1); running statistics are right
BN_UNBIASED = _BN_TEMPLATE.replace("NORMALISE_WITH", "unbiased").replace("RUNNING_WITH", "unbiased")
# normalises correctly but stores the biased variance in running_var
BN_RUNNING_BIASED = _BN_TEMPLATE.replace(
    "NORMALISE_WITH", "x.var(dim=dims, unbiased=False)"
).replace("RUNNING_WITH", "var")

BN_CALLS_TORCH = (
    _BN_TEMPLATE.split("    def forward")[0]
    + """
    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)
"""
)

LN_LAST_DIM_ONLY = """
def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    if tuple(x.shape[-len(normalized_shape):]) != tuple(normalized_shape):
        raise ValueError("shape mismatch")
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
"""

LN_CALLS_TORCH = """
def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    return torch.nn.functional.layer_norm(x, tuple(normalized_shape), weight, bias, eps)
"""

GN_CALLS_MODULE = """
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    layer = nn.GroupNorm(num_groups, x.shape[1], eps=eps, affine=weight is not None)
    if weight is not None:
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    return layer(x)
"""

VARIANTS = {
    "batchnorm_unbiased_variance": {
        "answers": {"BatchNorm": BN_UNBIASED},
        "expect": {
            "test_batchnorm_visible": 0,
            "test_batchnorm_train": 0,
            "test_batchnorm_gradient": 0,
            "test_batchnorm_edge": 0,
        },
    },
    "batchnorm_running_var_biased": {
        "answers": {"BatchNorm": BN_RUNNING_BIASED},
        "expect": {"test_batchnorm_running": 0, "test_batchnorm_eval": 0},
    },
    "layer_norm_last_dim_only": {
        "answers": {"layer_norm": LN_LAST_DIM_ONLY},
        "expect": {"test_layer_norm_multi": 0},
    },
    "batchnorm_calls_reference": {
        "answers": {"BatchNorm": BN_CALLS_TORCH},
        "expect": {
            "test_batchnorm_visible": 0,
            "test_batchnorm_train": 0,
            "test_batchnorm_gradient": 0,
            "test_batchnorm_running": 0,
            "test_batchnorm_eval": 0,
            "test_batchnorm_edge": 0,
        },
    },
    "layer_norm_calls_reference": {
        "answers": {"layer_norm": LN_CALLS_TORCH},
        "expect": {
            "test_layer_norm_visible": 0,
            "test_layer_norm_hidden": 0,
            "test_layer_norm_multi": 0,
            "test_layer_norm_edge": 0,
        },
    },
    "group_norm_uses_nn_groupnorm": {
        "answers": {"group_norm": GN_CALLS_MODULE},
        "expect": {
            "test_group_norm_visible": 0,
            "test_group_norm_hidden": 0,
            "test_group_norm_special": 0,
            "test_group_norm_error": 0,
        },
    },
}
