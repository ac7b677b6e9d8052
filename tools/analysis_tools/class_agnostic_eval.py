"""COCO bbox AP of saved predictions twice: as they are, and with every class merged into one.

The gap between the two says how much of the missing AP is classification rather than localisation.  Labels index
the annotation file's categories in file order (mmdet's ``CocoDataset`` order when ``metainfo.classes`` lists them
in that order).

Example:
    python tools/test.py CONFIG CHECKPOINT --out work_dirs/syn/results.pkl
    python tools/analysis_tools/class_agnostic_eval.py work_dirs/syn/results.pkl \
        data/synthetic/annotations/instances_val.json
"""
import argparse
import contextlib
import copy
import io
import json
from typing import Dict, List

from mmengine.fileio import load
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def detections(results: List[dict], category_ids: List[int], class_agnostic: bool) -> List[dict]:
    """mmdet's ``--out`` results (``pred_instances`` per image) -> COCO detection dicts."""
    coco_dets = []
    for result in results:
        instances = result['pred_instances']
        for box, score, label in zip(instances['bboxes'].tolist(), instances['scores'].tolist(),
                                     instances['labels'].tolist()):
            coco_dets.append(dict(image_id=result['img_id'], bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                  score=score, category_id=category_ids[0] if class_agnostic else category_ids[label]))
    return coco_dets


def evaluate(ground_truth: dict, results: List[dict], class_agnostic: bool) -> Dict[str, float]:
    """AP, AP50 and AP75 of ``results`` against ``ground_truth`` (a COCO annotation dict)."""
    ground_truth = copy.deepcopy(ground_truth)
    category_ids = [category['id'] for category in ground_truth['categories']]
    if class_agnostic:
        for annotation in ground_truth['annotations']:
            annotation['category_id'] = category_ids[0]
    coco_dets = detections(results, category_ids, class_agnostic)
    if not coco_dets:
        return dict(mAP=0.0, AP50=0.0, AP75=0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = ground_truth
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(coco_dets), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(mAP=evaluator.stats[0], AP50=evaluator.stats[1], AP75=evaluator.stats[2])


def main() -> None:
    parser = argparse.ArgumentParser(description='COCO AP with and without classes')
    parser.add_argument('results', help='predictions written by tools/test.py --out')
    parser.add_argument('ann_file', help='COCO annotation file of the evaluated split')
    args = parser.parse_args()
    with open(args.ann_file) as file:
        ground_truth = json.load(file)
    results = load(args.results)
    for name, class_agnostic in (('with classes', False), ('class-agnostic', True)):
        scores = evaluate(ground_truth, results, class_agnostic)
        print(f'{name:15s} ' + '  '.join(f'{key} {value:.3f}' for key, value in scores.items()))


if __name__ == '__main__':
    main()
