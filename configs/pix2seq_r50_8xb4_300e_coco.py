# The name the README's commands use; identical to the mmdet-named recipe.
_base_ = './pix2seq_r50_8xb4-300e_coco.py'
