"""COCO keypoint AP of ``pred_instances.keypoints`` with pycocotools' ``COCOeval(iouType='keypoints')``."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.datasets.api_wrappers import COCO, COCOeval
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger

# pycocotools' per-keypoint OKS constants of COCO's 17 person keypoints
COCO_PERSON_SIGMAS = (.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089,
                      .089)
STAT_NAMES = ('mAP', 'mAP_50', 'mAP_75', 'mAP_m', 'mAP_l')


@METRICS.register_module()
class CocoKeypointMetric(BaseMetric):
    """Keypoint AP (OKS) of a model's ``pred_instances.keypoints`` (N, K, 2) and ``keypoint_scores`` (N, K)
    against the ``keypoints`` of a COCO annotation file, logged as ``coco/keypoints_mAP``, ``..._mAP_50``, ``_75``,
    ``_m`` and ``_l`` (COCO's keypoint summary).

    One prediction per distinct box, as the keypoint task answers one prompt per box: detections that share a box
    (``classes_per_box`` > 1) count once, with the class and score of the best of them.  Each prediction is scored as
    the official task scores it: ``score_weight`` times the mean of its keypoint scores plus ``1 - score_weight``
    times its box score.  The official ``points_score_weight`` is 1.0, the points' alone, with the ground-truth boxes
    as prompts (``use_gt_box_at_test``), where every box scores 1; prompted with detections, the box score says whether
    the object is there at all, so the default weighs both.

    Args:
        ann_file (str): The COCO file with ``keypoints`` (and ``num_keypoints``) in its annotations.
        sigmas (Sequence[float], optional): Per-keypoint OKS constants (``COCOeval.params.kpt_oks_sigmas``);
            default COCO's person constants, which need 17 keypoints.
        score_weight (float): Weight of the keypoint scores in a prediction's score, in [0, 1] (default 0.5;
            official 1.0).
        collect_device (str): mmengine's result collection device.
        prefix (str, optional): Metric name prefix (default ``coco``).
        backend_args (dict, optional): File backend of ``ann_file``.
    """
    default_prefix: Optional[str] = 'coco'

    def __init__(self, ann_file: str, sigmas: Optional[Sequence[float]] = None, score_weight: float = 0.5,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 <= score_weight <= 1:
            raise ValueError(f'CocoKeypointMetric: score_weight must be in [0, 1], got {score_weight}')
        with get_local_path(ann_file, backend_args=backend_args) as local_path:
            self.coco = COCO(local_path)
        num_keypoints = {len(ann['keypoints']) // 3 for ann in self.coco.dataset['annotations'] if 'keypoints' in ann}
        if len(num_keypoints) != 1:
            raise ValueError(f'CocoKeypointMetric: {ann_file} must give every annotation the same number of '
                             f'keypoints, found counts {sorted(num_keypoints)}')
        self.num_keypoints = num_keypoints.pop()
        if sigmas is None and self.num_keypoints != len(COCO_PERSON_SIGMAS):
            raise ValueError(f'CocoKeypointMetric: {ann_file} has {self.num_keypoints} keypoints; COCO\'s sigmas are '
                             f'for {len(COCO_PERSON_SIGMAS)}: give sigmas, one OKS constant per keypoint')
        self.sigmas = np.asarray(COCO_PERSON_SIGMAS if sigmas is None else sigmas, dtype=np.float64)
        if len(self.sigmas) != self.num_keypoints or not (self.sigmas > 0).all():
            raise ValueError(f'CocoKeypointMetric: sigmas must be {self.num_keypoints} positive numbers, got '
                             f'{list(self.sigmas)}')
        self.score_weight = score_weight

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for data_sample in data_samples:
            pred = data_sample['pred_instances']
            if 'keypoints' not in pred:
                raise ValueError('CocoKeypointMetric: the predictions have no keypoints; the model needs '
                                 '\'keypoints\' in model.head.tokenizer.tasks')
            self.results.append(dict(img_id=data_sample['img_id'], bboxes=pred['bboxes'].cpu().numpy(),
                                     labels=pred['labels'].cpu().numpy(),
                                     scores=pred['scores'].cpu().numpy(), keypoints=pred['keypoints'].cpu().numpy(),
                                     keypoint_scores=pred['keypoint_scores'].cpu().numpy()))

    def predictions(self, results: List[dict]) -> List[dict]:
        """The COCO result entries (``keypoints`` as ``x, y, 1`` triples) of the processed images."""
        cat_ids = self.coco.get_cat_ids(cat_names=self.dataset_meta['classes'])
        entries = []
        for result in results:
            order = np.argsort(-result['scores'], kind='stable')
            best = order[np.unique(result['bboxes'][order], axis=0, return_index=True)[1]]  # each box's best detection
            scores = (self.score_weight * result['keypoint_scores'][best].mean(-1)
                      + (1 - self.score_weight) * result['scores'][best])
            for label, score, points in zip(result['labels'][best], scores, result['keypoints'][best]):
                triples = np.concatenate([points, np.ones((len(points), 1))], axis=1)
                entries.append(dict(image_id=int(result['img_id']), category_id=cat_ids[int(label)],
                                    keypoints=triples.reshape(-1).round(2).tolist(), score=float(score)))
        return entries

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        entries = self.predictions(results)
        names = [f'keypoints_{name}' for name in STAT_NAMES]
        if not entries:
            logger.warning('CocoKeypointMetric: no predictions; keypoint AP is 0')
            return dict.fromkeys(names, 0.0)
        evaluation = COCOeval(self.coco, self.coco.loadRes(entries), 'keypoints')
        evaluation.params.kpt_oks_sigmas = self.sigmas
        evaluation.params.imgIds = sorted({int(result['img_id']) for result in results})
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        return {name: round(float(value), 4) for name, value in zip(names, evaluation.stats[:len(names)])}
