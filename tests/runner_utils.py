"""Shared by the tests that run mmengine's Runner on the synthetic config."""
import copy
import json
from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner


def data_options(root: Path) -> dict:
    return {'train_dataloader.dataset.data_root': f'{root}/', 'val_dataloader.dataset.data_root': f'{root}/',
            'val_evaluator.ann_file': f'{root}/annotations/instances_val.json'}


def train_losses(work_dir: Path):
    records = [json.loads(line) for line in next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    return {record['iter']: record['loss'] for record in records if 'loss' in record}


def train_in_process(cfg: Config, work_dir: Path, **options) -> Path:
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict({'work_dir': str(work_dir), 'experiment_name': work_dir.name, 'visualizer.name': work_dir.name,
                         **options})
    Runner.from_cfg(cfg).train()
    return work_dir
