"""mmdet's ``DetLocalVisualizer`` that also draws keypoints."""
from typing import List, Optional

import numpy as np
from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmdet.visualization.palette import get_palette
from mmengine.structures import InstanceData


@VISUALIZERS.register_module()
class KeypointDetLocalVisualizer(DetLocalVisualizer):
    """mmdet's ``DetLocalVisualizer`` (boxes, labels, masks as it draws them) that also draws each instance's
    ``keypoints``, in its box's colour: predictions (N, K, 2) every point, ground truth (N, K, 3) its labelled points
    (``v > 0``).  ``DetInferencer``, ``tools/demo.py`` and ``tools/test.py --show-dir`` use it when the config's
    ``visualizer.type`` names it; without keypoints it draws what mmdet's does.

    Args:
        name (str): The instance's name (mmengine keeps visualisers by name).
        keypoint_radius (int): Radius of a drawn point in pixels.
        **kwargs: ``DetLocalVisualizer`` arguments.
    """

    def __init__(self, name: str = 'visualizer', keypoint_radius: int = 2, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.keypoint_radius = keypoint_radius

    def _draw_instances(self, image: np.ndarray, instances: InstanceData, classes: Optional[List[str]],
                        palette: Optional[List[tuple]]) -> np.ndarray:
        image = super()._draw_instances(image, instances, classes, palette)
        if 'keypoints' not in instances or len(instances) == 0:
            return image
        keypoints = instances.keypoints.cpu().numpy()
        labelled = keypoints[..., 2] > 0 if keypoints.shape[-1] == 3 else np.ones(keypoints.shape[:2], bool)
        labels = instances.labels.tolist()
        colours = get_palette(palette if self.bbox_color is None else self.bbox_color, max(labels) + 1)
        self.set_image(image)
        for label, points, keep in zip(labels, keypoints[..., :2], labelled):
            if not keep.any():
                continue
            colour = colours[label]
            self.draw_circles(points[keep], np.full(int(keep.sum()), self.keypoint_radius), edge_colors=colour,
                              face_colors=colour)
        return self.get_image()
