"""Drawing of the Pix2Seq v2 tasks' outputs that mmdet's visualiser does not draw."""
from .local_visualizer import KeypointDetLocalVisualizer

__all__ = ['KeypointDetLocalVisualizer']
