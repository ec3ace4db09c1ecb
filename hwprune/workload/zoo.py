"""Built-in networks: well-known CNNs and ViT-B/16, rebuilt layer by layer from their
reference models.

===================  =========  ===========  ==============  ===================================
name                 input           params            MACs  reference model
===================  =========  ===========  ==============  ===================================
``lenet-300-100``    1x28x28        266,610         266,200  LeCun 1998; Han et al. 2015
``lenet-5``          1x28x28        431,080       2,293,000  Caffe examples/mnist (LeNet)
``cifar10-quick``    3x32x32        145,578      12,354,176  Caffe examples/cifar10 (quick)
``nin-cifar10``      3x32x32        966,986     222,486,528  Lin et al. 2014, Caffe model
``alexnet``          3x227x227   60,965,224     724,406,816  Caffe bvlc_alexnet (grouped)
``vgg16``            3x224x224  138,357,544  15,470,264,320  torchvision vgg16
``squeezenet1.0``    3x224x224    1,248,424     818,924,576  torchvision squeezenet1_0
``googlenet``        3x224x224    6,998,552   1,582,671,872  Caffe bvlc_googlenet, no aux heads
``resnet18``         3x224x224   11,689,512   1,814,073,344  torchvision resnet18
``resnet50``         3x224x224   25,557,032   4,089,184,256  torchvision resnet50 (v1.5)
``mobilenet-v1``     3x224x224    4,231,976     568,740,352  Howard 2017, TF-slim 1.0/224
``mobilenet-v2``     3x224x224    3,504,872     300,774,272  torchvision mobilenet_v2
``efficientnet-b0``  3x224x224    5,288,548     385,814,752  torchvision efficientnet_b0
``vit-b16``          3x224x224   86,567,656  17,563,828,224  torchvision vit_b_16
===================  =========  ===========  ==============  ===================================

Conventions (see :mod:`hwprune.workload.ops`):

* Layer names are the reference model's own: Caffe layer names for Caffe models
  (``conv1``, ``inception_3a/3x3_reduce``), PyTorch module names for torchvision
  models (``layer1.0.conv1``, ``layer1.0.downsample.0``), TF-slim scope names for
  MobileNet (``Conv2d_1_depthwise``, ``Conv2d_1_depthwise/BatchNorm``). Operations
  that are functions rather than modules in the reference get the name of the
  module whose output they produce: a Fire module's concatenation is
  ``features.3``, a residual block's addition is ``layer1.0``, a squeeze-excite
  module's multiply is ``features.1.0.block.1``; with a suffix where one module
  produces several (ViT's attention residual ``encoder.layers.encoder_layer_0.residual``
  beside the block's output ``encoder.layers.encoder_layer_0``). Functions called in
  the network's own ``forward`` get the function's name (``flatten``,
  ``adaptive_avg_pool2d``, ViT's ``reshape``, ``permute``, ``cat``, ``select``).
* ReLU, LRN and dropout are left out: they change no shape and have no weights or
  MACs. So are the activations that directly follow a conv, fc or batch norm
  (ReLU6 of MobileNet v2; SiLU of EfficientNet, its squeeze-excite's SiLU and
  sigmoid; ViT's MLP GELU): deployment fuses them into that layer. Kept are the
  operations on two tensors or along an axis: residual additions, squeeze-excite's
  broadcasting multiply, attention's softmax. Stochastic depth (identity at
  inference) is left out. Batch normalization is kept where the reference has it
  (2 params/channel); ViT's layer norms are kept (2 params/feature).
* MobileNet v2, EfficientNet-B0 and ViT-B/16 have, layer for layer, the layers with
  parameters or MACs that :func:`~hwprune.workload.torch_import.from_torch` imports
  from torchvision's models (batch norms kept). In ViT-B/16, ``nn.MultiheadAttention``'s
  ``in_proj`` (one 768->2304 weight with bias) is its three 768->768 projections
  ``q_proj``, ``k_proj``, ``v_proj`` (same parameters and MACs); attention's
  ``1/sqrt(64)`` scale (one multiply per score, no MACs) is left out, as the importer
  folds it into the softmax.
* Caffe pooling rounds output sizes up (``ceil_mode=True``); PyTorch pooling rounds
  down unless the model asks otherwise (SqueezeNet does).
* MACs count convolution and fully connected layers, and the matrix products
  between two activations (attention's ``Q K^T`` and ``A V``: 2 x 12 heads x 197 x
  197 x 64 = 59.6 M per ViT-B/16 block, 715.3 M of its 17.56 G), as torch's
  ``FlopCounterMode`` does (one FLOP pair = one MAC).

Use :func:`load_builtin` to get a (cached, immutable) network by name and
:func:`zoo_names` to list the names; :data:`ZOO` maps each name to a function that
builds a fresh copy.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from ..errors import UnknownNameError
from .builder import NetworkBuilder
from .network import Network

IMAGENET = (3, 224, 224)


# --------------------------------------------------------------------------- blocks


def _fire(b: NetworkBuilder, name: str, x: str, squeeze: int, expand1x1: int,
          expand3x3: int) -> str:
    """SqueezeNet Fire module (torchvision ``Fire``): squeeze 1x1, then expand 1x1 and
    3x3 side by side, concatenated. Returns the concat, named after the module."""
    s = b.conv(f"{name}.squeeze", x, squeeze, 1)
    e1 = b.conv(f"{name}.expand1x1", s, expand1x1, 1)
    e3 = b.conv(f"{name}.expand3x3", s, expand3x3, 3, padding=1)
    return b.concat(name, [e1, e3])


def _inception(b: NetworkBuilder, name: str, x: str, n1x1: int, n3x3_reduce: int,
               n3x3: int, n5x5_reduce: int, n5x5: int, pool_proj: int) -> str:
    """GoogLeNet inception module with Caffe bvlc_googlenet layer names."""
    p = f"inception_{name}"
    branch1 = b.conv(f"{p}/1x1", x, n1x1, 1)
    r3 = b.conv(f"{p}/3x3_reduce", x, n3x3_reduce, 1)
    branch3 = b.conv(f"{p}/3x3", r3, n3x3, 3, padding=1)
    r5 = b.conv(f"{p}/5x5_reduce", x, n5x5_reduce, 1)
    branch5 = b.conv(f"{p}/5x5", r5, n5x5, 5, padding=2)
    pool = b.maxpool(f"{p}/pool", x, 3, 1, padding=1, ceil_mode=True)
    branch_pool = b.conv(f"{p}/pool_proj", pool, pool_proj, 1)
    return b.concat(f"{p}/output", [branch1, branch3, branch5, branch_pool])


def _conv_bn(b: NetworkBuilder, conv: str, bn: str, x: str, out: int, kernel: int,
             stride: int = 1, padding: int = 0, groups: int = 1) -> str:
    """Convolution without bias followed by batch normalization."""
    x = b.conv(conv, x, out, kernel, stride=stride, padding=padding, groups=groups,
               bias=False)
    return b.batchnorm(bn, x)


def _downsample(b: NetworkBuilder, name: str, x: str, out: int, stride: int) -> str:
    """torchvision projection shortcut: 1x1 conv (``.0``) + batch norm (``.1``)."""
    return _conv_bn(b, f"{name}.downsample.0", f"{name}.downsample.1", x, out, 1,
                    stride=stride)


def _basic_block(b: NetworkBuilder, name: str, x: str, planes: int, stride: int) -> str:
    """torchvision ResNet ``BasicBlock``: two 3x3 convs plus identity or projection."""
    y = _conv_bn(b, f"{name}.conv1", f"{name}.bn1", x, planes, 3, stride, padding=1)
    y = _conv_bn(b, f"{name}.conv2", f"{name}.bn2", y, planes, 3, padding=1)
    shortcut = x
    if stride != 1 or b.shape(x)[0] != planes:
        shortcut = _downsample(b, name, x, planes, stride)
    return b.add(name, [y, shortcut])


def _bottleneck(b: NetworkBuilder, name: str, x: str, planes: int, stride: int) -> str:
    """torchvision ResNet ``Bottleneck`` (v1.5: the stride sits in the 3x3 conv)."""
    out = planes * 4
    y = _conv_bn(b, f"{name}.conv1", f"{name}.bn1", x, planes, 1)
    y = _conv_bn(b, f"{name}.conv2", f"{name}.bn2", y, planes, 3, stride, padding=1)
    y = _conv_bn(b, f"{name}.conv3", f"{name}.bn3", y, out, 1)
    shortcut = x
    if stride != 1 or b.shape(x)[0] != out:
        shortcut = _downsample(b, name, x, out, stride)
    return b.add(name, [y, shortcut])


def _dw_separable(b: NetworkBuilder, index: int, x: str, out: int, stride: int) -> str:
    """MobileNet v1 depthwise-separable block with TF-slim scope names:
    3x3 depthwise conv + BN, then 1x1 pointwise conv + BN."""
    dw = f"Conv2d_{index}_depthwise"
    pw = f"Conv2d_{index}_pointwise"
    channels = b.shape(x)[0]
    x = _conv_bn(b, dw, f"{dw}/BatchNorm", x, channels, 3, stride, padding=1,
                 groups=channels)
    return _conv_bn(b, pw, f"{pw}/BatchNorm", x, out, 1)


def _resnet(name: str, block: Callable[..., str], depths: tuple[int, ...],
            description: str, source: str) -> Network:
    """torchvision ResNet stem, four stages of ``block`` and the classifier."""
    b = NetworkBuilder(name, IMAGENET)
    x = _conv_bn(b, "conv1", "bn1", b.input, 64, 7, stride=2, padding=3)
    x = b.maxpool("maxpool", x, 3, 2, padding=1)
    for stage, depth in enumerate(depths, start=1):
        planes = 64 * 2 ** (stage - 1)
        for i in range(depth):
            stride = 2 if stage > 1 and i == 0 else 1
            x = block(b, f"layer{stage}.{i}", x, planes, stride)
    x = b.global_avgpool("avgpool", x)
    x = b.flatten("flatten", x)  # torch.flatten(x, 1) in ResNet.forward
    b.fc("fc", x, 1000)
    return b.build(description=description, source=source)


# ------------------------------------------------------------------------- networks


def lenet_300_100() -> Network:
    b = NetworkBuilder("lenet-300-100", (1, 28, 28))
    x = b.fc("ip1", b.input, 300)
    x = b.fc("ip2", x, 100)
    b.fc("ip3", x, 10)
    return b.build(
        description="LeNet-300-100: MNIST MLP with 300 and 100 hidden units",
        source="LeCun et al. 1998; Han et al. 2015 (Learning both Weights and Connections), "
               "LeNet-300-100 Caffe model",
    )


def lenet_5() -> Network:
    b = NetworkBuilder("lenet-5", (1, 28, 28))
    x = b.conv("conv1", b.input, 20, 5)
    x = b.maxpool("pool1", x, 2, 2, ceil_mode=True)
    x = b.conv("conv2", x, 50, 5)
    x = b.maxpool("pool2", x, 2, 2, ceil_mode=True)
    x = b.fc("ip1", x, 500)
    b.fc("ip2", x, 10)
    return b.build(
        description="LeNet-5 (Caffe variant): MNIST, 2 conv + 2 fc",
        source="LeCun et al. 1998; Caffe examples/mnist/lenet_train_test.prototxt",
    )


def cifar10_quick() -> Network:
    b = NetworkBuilder("cifar10-quick", (3, 32, 32))
    x = b.conv("conv1", b.input, 32, 5, padding=2)
    x = b.maxpool("pool1", x, 3, 2, ceil_mode=True)
    x = b.conv("conv2", x, 32, 5, padding=2)
    x = b.avgpool("pool2", x, 3, 2, ceil_mode=True)
    x = b.conv("conv3", x, 64, 5, padding=2)
    x = b.avgpool("pool3", x, 3, 2, ceil_mode=True)
    x = b.fc("ip1", x, 64)
    b.fc("ip2", x, 10)
    return b.build(
        description="Caffe CIFAR-10 quick: 3 conv + 2 fc",
        source="Caffe examples/cifar10/cifar10_quick_train_test.prototxt",
    )


def nin_cifar10() -> Network:
    b = NetworkBuilder("nin-cifar10", (3, 32, 32))
    x = b.conv("conv1", b.input, 192, 5, padding=2)
    x = b.conv("cccp1", x, 160, 1)
    x = b.conv("cccp2", x, 96, 1)
    x = b.maxpool("pool1", x, 3, 2, ceil_mode=True)
    x = b.conv("conv2", x, 192, 5, padding=2)
    x = b.conv("cccp3", x, 192, 1)
    x = b.conv("cccp4", x, 192, 1)
    x = b.avgpool("pool2", x, 3, 2, ceil_mode=True)
    x = b.conv("conv3", x, 192, 3, padding=1)
    x = b.conv("cccp5", x, 192, 1)
    x = b.conv("cccp6", x, 10, 1)
    # pool3 is AVE 8x8 over the 8x8 map: global average pooling. Output (10, 1, 1).
    b.global_avgpool("pool3", x)
    return b.build(
        description="Network in Network for CIFAR-10: mlpconv layers, global avg pool",
        source="Lin et al. 2014 (Network In Network); Caffe model zoo NIN CIFAR-10 "
               "train_val.prototxt",
    )


def alexnet() -> Network:
    b = NetworkBuilder("alexnet", (3, 227, 227))
    x = b.conv("conv1", b.input, 96, 11, stride=4)
    x = b.maxpool("pool1", x, 3, 2, ceil_mode=True)
    x = b.conv("conv2", x, 256, 5, padding=2, groups=2)
    x = b.maxpool("pool2", x, 3, 2, ceil_mode=True)
    x = b.conv("conv3", x, 384, 3, padding=1)
    x = b.conv("conv4", x, 384, 3, padding=1, groups=2)
    x = b.conv("conv5", x, 256, 3, padding=1, groups=2)
    x = b.maxpool("pool5", x, 3, 2, ceil_mode=True)
    x = b.fc("fc6", x, 4096)
    x = b.fc("fc7", x, 4096)
    b.fc("fc8", x, 1000)
    return b.build(
        description="AlexNet (Caffe BVLC): 5 conv (conv2/4/5 grouped) + 3 fc, ImageNet",
        source="Krizhevsky et al. 2012; Caffe models/bvlc_alexnet/deploy.prototxt",
    )


# torchvision ``cfgs["D"]``: channel counts, "M" = 2x2 max pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M")


def vgg16() -> Network:
    b = NetworkBuilder("vgg16", IMAGENET)
    x = b.input
    index = 0  # index into torchvision's ``features`` Sequential (ReLUs take a slot)
    for item in _VGG16_CFG:
        if item == "M":
            x = b.maxpool(f"features.{index}", x, 2, 2)
            index += 1
        else:
            x = b.conv(f"features.{index}", x, item, 3, padding=1)
            index += 2
    # ``avgpool`` (AdaptiveAvgPool2d((7, 7))) is the identity on the 7x7 map of a
    # 224x224 input, so it is left out; classifier.0/3/6 flatten their input.
    x = b.fc("classifier.0", x, 4096)
    x = b.fc("classifier.3", x, 4096)
    b.fc("classifier.6", x, 1000)
    return b.build(
        description="VGG-16 (configuration D): 13 conv + 3 fc, ImageNet",
        source="Simonyan & Zisserman 2015; torchvision/models/vgg.py vgg16",
    )


def squeezenet1_0() -> Network:
    b = NetworkBuilder("squeezenet1.0", IMAGENET)
    x = b.conv("features.0", b.input, 96, 7, stride=2)
    x = b.maxpool("features.2", x, 3, 2, ceil_mode=True)
    x = _fire(b, "features.3", x, 16, 64, 64)
    x = _fire(b, "features.4", x, 16, 64, 64)
    x = _fire(b, "features.5", x, 32, 128, 128)
    x = b.maxpool("features.6", x, 3, 2, ceil_mode=True)
    x = _fire(b, "features.7", x, 32, 128, 128)
    x = _fire(b, "features.8", x, 48, 192, 192)
    x = _fire(b, "features.9", x, 48, 192, 192)
    x = _fire(b, "features.10", x, 64, 256, 256)
    x = b.maxpool("features.11", x, 3, 2, ceil_mode=True)
    x = _fire(b, "features.12", x, 64, 256, 256)
    x = b.conv("classifier.1", x, 1000, 1)
    x = b.global_avgpool("classifier.3", x)
    b.flatten("flatten", x)  # torch.flatten(x, 1) in SqueezeNet.forward
    return b.build(
        description="SqueezeNet 1.0: Fire modules, AlexNet accuracy with 50x fewer params",
        source="Iandola et al. 2016; torchvision/models/squeezenet.py squeezenet1_0",
    )


# (name, 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj), bvlc_googlenet / paper Table 1
_INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet() -> Network:
    b = NetworkBuilder("googlenet", IMAGENET)
    x = b.conv("conv1/7x7_s2", b.input, 64, 7, stride=2, padding=3)
    x = b.maxpool("pool1/3x3_s2", x, 3, 2, ceil_mode=True)
    x = b.conv("conv2/3x3_reduce", x, 64, 1)
    x = b.conv("conv2/3x3", x, 192, 3, padding=1)
    x = b.maxpool("pool2/3x3_s2", x, 3, 2, ceil_mode=True)
    for name, widths in _INCEPTIONS.items():
        x = _inception(b, name, x, *widths)
        if name in ("3b", "4e"):
            x = b.maxpool(f"pool{name[0]}/3x3_s2", x, 3, 2, ceil_mode=True)
    x = b.avgpool("pool5/7x7_s1", x, 7, 1)
    b.fc("loss3/classifier", x, 1000)
    return b.build(
        description="GoogLeNet (Inception v1, Caffe BVLC) without auxiliary classifiers",
        source="Szegedy et al. 2015; Caffe models/bvlc_googlenet/deploy.prototxt",
    )


def resnet18() -> Network:
    return _resnet(
        "resnet18", _basic_block, (2, 2, 2, 2),
        description="ResNet-18: basic residual blocks with batch norm, ImageNet",
        source="He et al. 2016; torchvision/models/resnet.py resnet18",
    )


def resnet50() -> Network:
    return _resnet(
        "resnet50", _bottleneck, (3, 4, 6, 3),
        description="ResNet-50 v1.5: bottleneck residual blocks with batch norm, ImageNet",
        source="He et al. 2016; torchvision/models/resnet.py resnet50 (stride in 3x3)",
    )


# (output channels, stride) of the 13 depthwise-separable blocks, paper Table 1
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                     (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2),
                     (1024, 1))


def mobilenet_v1() -> Network:
    b = NetworkBuilder("mobilenet-v1", IMAGENET)
    x = _conv_bn(b, "Conv2d_0", "Conv2d_0/BatchNorm", b.input, 32, 3, stride=2,
                 padding=1)
    for index, (out, stride) in enumerate(_MOBILENET_BLOCKS, start=1):
        x = _dw_separable(b, index, x, out, stride)
    x = b.global_avgpool("Logits/AvgPool_1a", x)  # 7x7 VALID avg pool on the 7x7 map
    # TF-slim implements the paper's "FC 1024x1000" as a 1x1 conv with bias on the
    # pooled 1x1 map, then squeezes it to a vector; same params and MACs as an fc.
    x = b.conv("Logits/Conv2d_1c_1x1", x, 1000, 1)
    b.flatten("Logits/SpatialSqueeze", x)
    return b.build(
        description="MobileNet v1 1.0/224: depthwise-separable convs with batch norm",
        source="Howard et al. 2017; tensorflow/models research/slim/nets/mobilenet_v1.py",
    )


# torchvision ``inverted_residual_setting``: (expansion t, output channels c, repeats n,
# first stride s), Sandler et al. 2018, Table 2.
_MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _expand_depthwise(b: NetworkBuilder, prefix: str, x: str, expand: int, kernel: int,
                      stride: int) -> tuple[str, int]:
    """The front of an inverted-residual block (MobileNetV2, EfficientNet's MBConv): a
    1x1 expansion conv + BN (``prefix.0.0``/``prefix.0.1``, left out when ``expand`` is
    1), then the ``kernel`` x ``kernel`` depthwise conv + BN. Returns the output and the
    index of the block's next sub-module."""
    hidden = b.shape(x)[0] * expand
    y, index = x, 0
    if expand != 1:
        y = _conv_bn(b, f"{prefix}.0.0", f"{prefix}.0.1", y, hidden, 1)
        index = 1
    y = _conv_bn(b, f"{prefix}.{index}.0", f"{prefix}.{index}.1", y, hidden, kernel,
                 stride, padding=(kernel - 1) // 2, groups=hidden)
    return y, index + 1


def _inverted_residual(b: NetworkBuilder, name: str, x: str, out: int, stride: int,
                       expand: int) -> str:
    """torchvision ``InvertedResidual``: 1x1 expansion conv + BN (``conv.0``, left out
    when ``expand`` is 1), 3x3 depthwise conv + BN, 1x1 linear projection conv
    (``conv.<k>``) + BN (``conv.<k+1>``); the block's addition (``name``) when the
    stride is 1 and the channels do not change."""
    channels = b.shape(x)[0]
    y, index = _expand_depthwise(b, f"{name}.conv", x, expand, 3, stride)
    y = _conv_bn(b, f"{name}.conv.{index}", f"{name}.conv.{index + 1}", y, out, 1)
    if stride == 1 and channels == out:
        return b.add(name, [x, y])
    return y


def mobilenet_v2() -> Network:
    b = NetworkBuilder("mobilenet-v2", IMAGENET)
    x = _conv_bn(b, "features.0.0", "features.0.1", b.input, 32, 3, stride=2, padding=1)
    index = 1
    for expand, out, repeats, first_stride in _MOBILENET_V2_SETTING:
        for i in range(repeats):
            x = _inverted_residual(b, f"features.{index}", x, out, first_stride if i == 0 else 1,
                                   expand)
            index += 1
    x = _conv_bn(b, f"features.{index}.0", f"features.{index}.1", x, 1280, 1)
    # MobileNetV2.forward: nn.functional.adaptive_avg_pool2d(x, (1, 1)), a global pool;
    # then torch.flatten(x, 1); classifier.0 is dropout.
    x = b.global_avgpool("adaptive_avg_pool2d", x)
    x = b.flatten("flatten", x)
    b.fc("classifier.1", x, 1000)
    return b.build(
        description="MobileNet v2 1.0/224: inverted residual blocks with linear bottlenecks",
        source="Sandler et al. 2018; torchvision/models/mobilenetv2.py mobilenet_v2",
    )


# torchvision ``_efficientnet_conf("efficientnet_b0")`` (width and depth 1.0): per stage
# (expand ratio, kernel, first stride, output channels, repeats); Tan & Le 2019, Table 1.
_EFFICIENTNET_B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2),
                           (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
                           (6, 3, 1, 320, 1))


def _squeeze_excite(b: NetworkBuilder, name: str, x: str, squeeze: int) -> str:
    """torchvision ``SqueezeExcitation``: global average pool (``avgpool``), 1x1 convs
    with bias ``fc1`` (to ``squeeze`` channels) and ``fc2`` (back), then the input
    scaled channel by channel by the gate: a broadcasting multiply named ``name``.
    The SiLU after ``fc1`` and the sigmoid after ``fc2`` are left out."""
    channels = b.shape(x)[0]
    gate = b.global_avgpool(f"{name}.avgpool", x)
    gate = b.conv(f"{name}.fc1", gate, squeeze, 1)
    gate = b.conv(f"{name}.fc2", gate, channels, 1)
    return b.elementwise(name, "mul", [gate, x])


def _mbconv(b: NetworkBuilder, name: str, x: str, out: int, kernel: int, stride: int,
            expand: int) -> str:
    """torchvision ``MBConv``: 1x1 expansion conv + BN (``block.0``, left out when
    ``expand`` is 1), depthwise conv + BN, squeeze-excite (squeeze to a quarter of the
    block's input channels), 1x1 projection conv + BN; the block's addition (``name``)
    when the stride is 1 and the channels do not change (stochastic depth is the
    identity at inference)."""
    channels = b.shape(x)[0]
    y, index = _expand_depthwise(b, f"{name}.block", x, expand, kernel, stride)
    y = _squeeze_excite(b, f"{name}.block.{index}", y, max(1, channels // 4))
    y = _conv_bn(b, f"{name}.block.{index + 1}.0", f"{name}.block.{index + 1}.1", y, out, 1)
    if stride == 1 and channels == out:
        return b.add(name, [y, x])
    return y


def efficientnet_b0() -> Network:
    b = NetworkBuilder("efficientnet-b0", IMAGENET)
    x = _conv_bn(b, "features.0.0", "features.0.1", b.input, 32, 3, stride=2, padding=1)
    for stage, (expand, kernel, stride, out, repeats) in enumerate(_EFFICIENTNET_B0_STAGES, start=1):
        for i in range(repeats):
            x = _mbconv(b, f"features.{stage}.{i}", x, out, kernel, stride if i == 0 else 1, expand)
    x = _conv_bn(b, "features.8.0", "features.8.1", x, 1280, 1)
    x = b.global_avgpool("avgpool", x)
    x = b.flatten("flatten", x)  # torch.flatten(x, 1) in EfficientNet.forward
    b.fc("classifier.1", x, 1000)  # classifier.0 is dropout
    return b.build(
        description="EfficientNet-B0: MBConv blocks with squeeze-excite, 224x224",
        source="Tan & Le 2019; torchvision/models/efficientnet.py efficientnet_b0",
    )


def _self_attention(b: NetworkBuilder, name: str, x: str, heads: int) -> str:
    """torchvision's ``nn.MultiheadAttention`` on ``(T, D)`` tokens, as :func:`from_torch
    <hwprune.workload.torch_import.from_torch>` expands it: its ``in_proj`` (one
    ``D -> 3D`` weight with bias) as the three ``D -> D`` projections ``q_proj``,
    ``k_proj``, ``v_proj`` (same parameters and MACs), each viewed as ``heads`` heads
    (``k`` transposed for ``Q K^T``), the scores per head, softmax (the ``1/sqrt(d)``
    scale left out: one multiply per score, no MACs), the context ``A V``, the heads
    merged back and ``out_proj``."""
    tokens, dim = b.shape(x)
    head_dim = dim // heads
    views = {}
    for tag, order in (("q", (1, 0, 2)), ("k", (1, 2, 0)), ("v", (1, 0, 2))):
        y = b.token_fc(f"{name}.{tag}_proj", x, dim)
        y = b.reshape(f"{name}.{tag}_heads", y, (tokens, heads, head_dim))
        views[tag] = b.permute(f"{name}.{tag}_perm", y, order)
    scores = b.matmul(f"{name}.scores", views["q"], views["k"])      # (heads, T, T)
    probs = b.activation(f"{name}.softmax", scores, "softmax")
    context = b.matmul(f"{name}.context", probs, views["v"])       # (heads, T, d)
    context = b.permute(f"{name}.merge_perm", context, (1, 0, 2))
    context = b.reshape(f"{name}.merge", context, (tokens, dim))
    return b.token_fc(f"{name}.out_proj", context, dim)


def _encoder_block(b: NetworkBuilder, name: str, x: str, heads: int, mlp_dim: int) -> str:
    """torchvision ``EncoderBlock`` (pre-LN): ``ln_1``, self-attention, the residual
    addition ``name.residual``; ``ln_2``, MLP (``mlp.0``, GELU left out, ``mlp.3``), the
    residual addition ``name`` (the block's output)."""
    dim = b.shape(x)[-1]
    y = b.layernorm(f"{name}.ln_1", x, dim)
    y = _self_attention(b, f"{name}.self_attention", y, heads)
    x = b.add(f"{name}.residual", [y, x])
    y = b.layernorm(f"{name}.ln_2", x, dim)
    y = b.token_fc(f"{name}.mlp.0", y, mlp_dim)
    y = b.token_fc(f"{name}.mlp.3", y, dim)
    return b.add(name, [x, y])


def vit_b16() -> Network:
    b = NetworkBuilder("vit-b16", IMAGENET)
    dim, patch = 768, 16
    x = b.conv("conv_proj", b.input, dim, patch, stride=patch)          # (768, 14, 14)
    # VisionTransformer._process_input: reshape to (D, 196), permute to (196, D) tokens.
    x = b.reshape("reshape", x, (dim, -1))
    x = b.permute("permute", x, (1, 0))
    cls = b.constant("class_token", (1, dim))
    x = b.concat("cat", [cls, x])                                       # (197, 768)
    pos = b.constant("encoder.pos_embedding", b.shape(x))
    x = b.elementwise("encoder.add", "add", [x, pos])
    for i in range(12):
        x = _encoder_block(b, f"encoder.layers.encoder_layer_{i}", x, 12, 3072)
    x = b.layernorm("encoder.ln", x, dim)
    x = b.select("select", x, 0, 0)                                     # x[:, 0]: class token
    b.fc("heads.head", x, 1000)
    return b.build(
        description="ViT-B/16: 16x16 patches, 12 pre-LN encoder blocks (12 heads, 768 wide)",
        source="Dosovitskiy et al. 2021; torchvision/models/vision_transformer.py vit_b_16",
    )


# ------------------------------------------------------------------------- registry

ZOO: dict[str, Callable[[], Network]] = {
    "lenet-300-100": lenet_300_100,
    "lenet-5": lenet_5,
    "cifar10-quick": cifar10_quick,
    "nin-cifar10": nin_cifar10,
    "alexnet": alexnet,
    "vgg16": vgg16,
    "squeezenet1.0": squeezenet1_0,
    "googlenet": googlenet,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet-v1": mobilenet_v1,
    "mobilenet-v2": mobilenet_v2,
    "efficientnet-b0": efficientnet_b0,
    "vit-b16": vit_b16,
}
"""Built-in network name -> function building a fresh :class:`Network`."""


def zoo_names() -> list[str]:
    """Names accepted by :func:`load_builtin`, in registry order."""
    return list(ZOO)


@lru_cache(maxsize=None)
def _cached(name: str) -> Network:
    return ZOO[name]()


def load_builtin(name: str) -> Network:
    """The built-in network ``name`` (built once, then cached; networks are frozen).

    Raises:
        UnknownNameError: ``name`` is not in the zoo; the message lists the names.
    """
    if name not in ZOO:
        raise UnknownNameError(
            f"unknown built-in network {name!r}; accepted names are: "
            + ", ".join(zoo_names())
        )
    return _cached(name)
