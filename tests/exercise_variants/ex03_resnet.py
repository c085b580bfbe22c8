"""Round-trip variants for ex03_resnet (see course_lib/grading/README.md, "Variants")."""

_BLOCK_INIT = """
class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1, residual=True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if not residual:
            self.shortcut = None
        elif stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
"""

# ReLU applied before the addition (the sum is not rectified): every residual output is wrong
BLOCK_RELU_BEFORE_ADD = (
    _BLOCK_INIT
    + """
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return out
"""
)

# projection shortcut without BatchNorm: identity blocks and plain blocks are right
BLOCK_PROJECTION_WITHOUT_BN = (
    _BLOCK_INIT.replace(
        "nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)",
        "nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)",
    )
    + """
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)
"""
)

# the second stage does not downsample (stride 2 only in the third stage): same parameter count,
# wrong logits
RESNET_ONE_DOWNSAMPLING = """
def resnet_cifar(depth, num_classes=10, plain=False):
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError("depth must be 6n + 2")
    n = (depth - 2) // 6
    layers = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    channels = 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(n):
            stride = 2 if stage == 2 and i == 0 else 1
            layers.append(BasicBlock(channels, width, stride, residual=not plain))
            channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
"""

BLOCK_SUBCLASSES_COURSE_LIB = """
from course_lib.models.resnet import BasicBlock as _Reference


class BasicBlock(_Reference):
    def __init__(self, in_channels, out_channels, stride=1, residual=True):
        super().__init__(in_channels, out_channels, stride, shortcut="B", residual=residual)
"""

RESNET_CALLS_COURSE_LIB = """
from course_lib.models import resnet_cifar as _reference


def resnet_cifar(depth, num_classes=10, plain=False):
    return _reference(depth, num_classes=num_classes, plain=plain, shortcut="B")
"""

VARIANTS = {
    "block_relu_before_addition": {
        "answers": {"BasicBlock": BLOCK_RELU_BEFORE_ADD},
        "expect": {
            "test_basic_block_visible": 0,
            "test_basic_block_identity": 0,
            "test_basic_block_projection": 0,
            "test_resnet_cifar_visible": 0,
            "test_resnet_cifar_forward": 0,
        },
    },
    "projection_without_batchnorm": {
        "answers": {"BasicBlock": BLOCK_PROJECTION_WITHOUT_BN},
        "expect": {
            "test_basic_block_projection": 0,
            "test_resnet_cifar_visible": 0,
            "test_resnet_cifar_counts": 0,
            "test_resnet_cifar_forward": 0,
            "test_resnet_cifar_depth": 0,
        },
    },
    "resnet_forgets_one_downsampling": {
        "answers": {"resnet_cifar": RESNET_ONE_DOWNSAMPLING},
        "expect": {
            "test_resnet_cifar_visible": 0,
            "test_resnet_cifar_forward": 0,
            "test_resnet_cifar_plain": 0,
        },
    },
    "block_subclasses_course_lib": {
        "answers": {"BasicBlock": BLOCK_SUBCLASSES_COURSE_LIB},
        "expect": {
            "test_basic_block_visible": 0,
            "test_basic_block_identity": 0,
            "test_basic_block_projection": 0,
            "test_basic_block_plain": 0,
            "test_resnet_cifar_visible": 0,
            "test_resnet_cifar_counts": 0,
            "test_resnet_cifar_forward": 0,
            "test_resnet_cifar_plain": 0,
            "test_resnet_cifar_depth": 0,
        },
    },
    "resnet_calls_course_lib": {
        "answers": {"resnet_cifar": RESNET_CALLS_COURSE_LIB},
        "expect": {
            "test_resnet_cifar_visible": 0,
            "test_resnet_cifar_counts": 0,
            "test_resnet_cifar_forward": 0,
            "test_resnet_cifar_plain": 0,
            "test_resnet_cifar_depth": 0,
        },
    },
}

# make_shortcut: the projection forgets its BatchNorm (identity shortcuts stay right)
SHORTCUT_WITHOUT_BN = """
def make_shortcut(in_channels, out_channels, stride=1):
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
"""

VARIANTS["make_shortcut_without_batchnorm"] = {
    "answers": {"make_shortcut": SHORTCUT_WITHOUT_BN},
    "expect": {
        "test_make_shortcut_hidden": 0,
        "test_basic_block_projection": 0,
        "test_resnet_cifar_visible": 0,
        "test_resnet_cifar_counts": 0,
        "test_resnet_cifar_forward": 0,
        "test_resnet_cifar_depth": 0,
    },
}
