"""mmdet's ResNet with the official Pix2Seq stem max-pool (TensorFlow ``padding='SAME'``)."""
import math

import torch.nn.functional as F
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from torch import Tensor, nn

STEM_POOLS = ('pytorch', 'tf_same')


def same_padding(size: int, kernel_size: int, stride: int) -> tuple:
    """TensorFlow 'SAME' padding of one spatial dimension: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class TFSameMaxPool2d(nn.Module):
    """Max-pooling with TensorFlow's ``padding='SAME'``: output ``ceil(n / stride)``, the padding split with the odd
    pixel at the bottom/right (a 3x3/2 pool pads 0 before and 1 after an even size, 1 and 1 an odd one) where
    ``nn.MaxPool2d(3, 2, padding=1)`` always pads 1 and 1.  Padded pixels never win (``-inf``).

    Args:
        kernel_size (int): Pool window.
        stride (int): Stride.
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel_size, self.stride)
        x = F.pad(x, (left, right, top, bottom), value=float('-inf'))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f'kernel_size={self.kernel_size}, stride={self.stride}, padding=SAME'


@MODELS.register_module()
class Pix2SeqResNet(ResNet):
    """mmdet ``ResNet`` (same arguments, same parameter names, so torchvision/mmdet weights and converted official
    weights load alike) whose stem max-pool can be the official one.

    The official ResNet (google-research/pix2seq ``architectures/resnet.py``) is torchvision's "v1.5" ResNet (stride
    on the 3x3 convolution: mmdet ``style='pytorch'``), BatchNorm eps 1e-5, except its stem max-pool
    ``MaxPooling2D(3, 2, padding='SAME')``: on the even sizes of the usual inputs it pads 0 rows/columns before and
    1 after, where PyTorch pads 1 and 1, which shifts every later feature by half a stem pixel; converted official
    weights need ``stem_pool='tf_same'``.  Its ``c4`` variant is ``num_stages=3, out_indices=(2, )``.

    Args:
        stem_pool (str): ``'pytorch'`` (default, mmdet's ``MaxPool2d(3, 2, padding=1)``) or ``'tf_same'``.
        **kwargs: mmdet ``ResNet`` arguments.
    """

    def __init__(self, stem_pool: str = 'pytorch', **kwargs) -> None:
        if stem_pool not in STEM_POOLS:
            raise ValueError(f'Pix2SeqResNet: stem_pool must be one of {STEM_POOLS}, got {stem_pool!r}')
        super().__init__(**kwargs)
        self.stem_pool = stem_pool
        if stem_pool == 'tf_same':
            self.maxpool = TFSameMaxPool2d(3, 2)
