"""Metrics of the Pix2Seq v2 tasks that mmdet does not have."""
from .coco_keypoint_metric import CocoKeypointMetric

__all__ = ['CocoKeypointMetric']
