# Lever on the hard preset: the hard recipe (stride 8, 12 objects, 34 epochs) with the main recipe's auxiliary dense
# head on its stride-8 encoder output (docs/results_synthetic.md#hard-preset).
_base_ = '../pix2seq_r18-tiny-s8_1xb16_34e_synthetic-hard.py'
model = dict(aux_head=dict(_base_.aux_fcos_head, _delete_=True, strides=[8]))  # the hard recipe has none
