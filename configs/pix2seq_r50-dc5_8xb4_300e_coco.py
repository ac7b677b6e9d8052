# The paper's from-scratch recipe with a dilated C5 (stride 16 features): the last stage uses dilation 2 instead of
# stride 2.
_base_ = './pix2seq_r50_8xb4_300e_coco.py'
model = dict(backbone=dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))
