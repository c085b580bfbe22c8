"""Models of the course, with explicit constructors and their published parameter counts.

==============================  =================================================  ==============
constructor                     what                                               parameters
==============================  =================================================  ==============
``mlp()``                       MLP baseline 3072-512-120-84-10                    1,645,950
``small_convnet()``             7-conv BatchNorm ConvNet (review lecture)          17,020
``lenet5(faithful=...)``        LeNet-5, modern or faithful                        61,706 / 60,000
``alexnet()``                   AlexNet (``groups=2``: the two-GPU original)       62.4M / 61.0M
``vgg(cfg="D")``                VGG A, A-LRN, B, C, D, E (``small_input=True``)    133M ... 144M
``googlenet()``                 GoogLeNet from the paper's table                   7.0M
``resnet_cifar(20)``            CIFAR ResNet-6n+2, plain/preact/bottleneck         0.27M (56: 0.86M)
``wide_resnet(28, 10)``         WRN-d-k                                            36.5M
``resnet18/34/50()``            ImageNet ResNets (= torchvision's counts)          11.7M/21.8M/25.6M
``resnext50_32x4d()``           ResNeXt-50, 32 groups x 4 (= torchvision)          25,028,904
``resnext_cifar(29, 8, 64)``    CIFAR ResNeXt-29, C x d (small: ``width=8``)       34.4M (8x64d)
``densenet121()``               DenseNet-121, k = 32 (= torchvision)               7,978,856
``densenet_cifar(100, 12)``     CIFAR DenseNet-BC (``bc=False``: DenseNet)         0.8M (L=40: 1.0M)
``resnet1d()``                  small 1-D ResNet for MNIST-1D
==============================  =================================================  ==============

Utilities: :func:`count_parameters`, :func:`summary`, :func:`receptive_field`; blocks in
:mod:`course_lib.models.blocks`; initialisation and signal statistics in
:mod:`course_lib.models.init`.
"""

from course_lib.models.blocks import (
    DenseBlock,
    DenseLayer,
    DepthwiseSeparableConv,
    HighwayBlock,
    Inception,
    NaiveInception,
    ResidualBlock,
    Transition,
)
from course_lib.models.convnet import SmallConvNet, alexnet, small_convnet
from course_lib.models.densenet import DenseNet, densenet121, densenet_cifar
from course_lib.models.inception import GoogLeNet, googlenet
from course_lib.models.init import init_weights, kaiming_init_, signal_stats, xavier_init_
from course_lib.models.lenet import lenet5
from course_lib.models.mlp import MLP, BatchedMLP, count_linear_regions, fit_batched, mlp
from course_lib.models.resnet import (
    BasicBlock,
    Bottleneck,
    PreActBlock,
    PreActBottleneck,
    ResNet,
    resnet1d,
    resnet18,
    resnet34,
    resnet50,
    resnet_cifar,
    wide_resnet,
)
from course_lib.models.resnext import ResNeXtBlock, resnext50_32x4d, resnext_cifar
from course_lib.models.utils import (
    count_parameters,
    receptive_field,
    receptive_field_table,
    summary,
)
from course_lib.models.vgg import VGG, VGG_CONFIGS, vgg

__all__ = [
    "MLP",
    "VGG",
    "VGG_CONFIGS",
    "BasicBlock",
    "Bottleneck",
    "DenseBlock",
    "DenseLayer",
    "DenseNet",
    "DepthwiseSeparableConv",
    "GoogLeNet",
    "HighwayBlock",
    "Inception",
    "NaiveInception",
    "PreActBlock",
    "PreActBottleneck",
    "ResNet",
    "ResNeXtBlock",
    "ResidualBlock",
    "SmallConvNet",
    "Transition",
    "alexnet",
    "count_parameters",
    "densenet121",
    "densenet_cifar",
    "googlenet",
    "init_weights",
    "kaiming_init_",
    "lenet5",
    "mlp",
    "BatchedMLP",
    "fit_batched",
    "count_linear_regions",
    "receptive_field",
    "receptive_field_table",
    "resnet1d",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_cifar",
    "resnext50_32x4d",
    "resnext_cifar",
    "signal_stats",
    "small_convnet",
    "summary",
    "vgg",
    "wide_resnet",
    "xavier_init_",
]
