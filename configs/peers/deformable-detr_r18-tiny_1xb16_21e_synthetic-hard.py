# The Deformable DETR peer on the `hard` preset:
# its easy peer with the data of data/synthetic_hard/ (./_base_/synthetic_peer.py).
_base_ = './deformable-detr_r18-tiny_1xb16_21e_synthetic.py'
from mmengine import Config as __Config  # noqa: E402
globals().update(__Config.fromfile('{{ fileDirname }}/_base_/synthetic_peer.py').hard_preset)
