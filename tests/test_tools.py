"""The mmdet workflow end to end on a tiny synthetic set: train.py, test.py (CocoMetric), resume, dist_train.sh with
two CPU processes (gloo), DetInferencer / demo.py and browse_dataset.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, SYNTHETIC_CONFIG, load_script

TINY = ['train_dataloader.batch_size=4', 'train_dataloader.sampler.type=BatchRepeatSampler',
        'train_dataloader.sampler.batch_repeat=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'val_dataloader.batch_size=4', 'default_hooks.logger.interval=1',
        # an untrained model may end every sequence at once; near-uniform constrained sampling always yields boxes
        'model.test_cfg.strategy=nucleus', 'model.test_cfg.top_p=1.0', 'model.test_cfg.temperature=3.0',
        'model.test_cfg.constrained=True']


def load_tool(name: str):
    return load_script(REPO_ROOT / 'tools' / 'analysis_tools' / f'{name}.py')


def data_options(root: Path):
    return [f'train_dataloader.dataset.data_root={root}/', f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/',
            f'val_evaluator.ann_file={root}/annotations/instances_val.json',
            f'test_evaluator.ann_file={root}/annotations/instances_val.json']


def run(args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def scalars(work_dir: Path):
    lines = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, synthetic_root):
    """Two epochs on 16 images: 32 copies (batch repetition 2) in batches of 4, 8 iterations per epoch."""
    work_dir = tmp_path_factory.mktemp('train')
    run([sys.executable, 'tools/train.py', str(SYNTHETIC_CONFIG), '--work-dir', str(work_dir), '--cfg-options',
         *TINY, *data_options(synthetic_root), 'train_cfg.max_epochs=2', 'train_cfg.val_interval=2'])
    return work_dir


def test_train_writes_checkpoints_logs_and_evaluates(trained):
    assert (trained / 'epoch_2.pth').exists()
    records = scalars(trained)
    train_records = [r for r in records if 'loss' in r]
    assert len(train_records) == 16 and all(r['loss'] > 0 for r in train_records)
    assert {'coord_ce', 'class_ce', 'eos_ce', 'lr'} <= set(train_records[0])
    assert any('coco/bbox_mAP' in r for r in records)


def test_test_tool_reports_coco_map_and_draws(trained, synthetic_root, tmp_path):
    result = run([sys.executable, 'tools/test.py', str(SYNTHETIC_CONFIG), str(trained / 'epoch_2.pth'), '--work-dir',
                  str(tmp_path), '--show-dir', 'vis', '--out', str(tmp_path / 'preds.pkl'), '--cfg-options', *TINY,
                  *data_options(synthetic_root)])
    assert 'coco/bbox_mAP:' in result.stdout + result.stderr
    assert len(list(tmp_path.glob('*/vis/*.png'))) == 8
    assert (tmp_path / 'preds.pkl').stat().st_size > 0
    analysis = run([sys.executable, 'tools/analysis_tools/class_agnostic_eval.py', str(tmp_path / 'preds.pkl'),
                    str(synthetic_root / 'annotations' / 'instances_val.json')])
    assert [line.split()[0] for line in analysis.stdout.splitlines()] == ['with', 'class-agnostic']


def test_class_agnostic_eval_separates_classification_from_localisation():
    import torch
    tool = load_tool('class_agnostic_eval')
    ground_truth = dict(
        images=[dict(id=i, file_name=f'{i}.png', width=100, height=100) for i in (1, 2)],
        categories=[dict(id=7, name='a'), dict(id=9, name='b')],
        annotations=[dict(id=i, image_id=i, category_id=7, bbox=[10, 20, 30, 40], area=1200, iscrowd=0)
                     for i in (1, 2)])
    # the right boxes with the wrong class (label 1 = category 9)
    results = [dict(img_id=i, pred_instances=dict(bboxes=torch.tensor([[10., 20., 40., 60.]]),
                                                  scores=torch.tensor([0.9]), labels=torch.tensor([1])))
               for i in (1, 2)]
    assert tool.evaluate(ground_truth, results, class_agnostic=False)['mAP'] == 0.0
    assert tool.evaluate(ground_truth, results, class_agnostic=True)['mAP'] == pytest.approx(1.0)


def test_resume_continues_from_the_last_checkpoint(trained, synthetic_root, tmp_path):
    work_dir = tmp_path / 'resumed'
    run([sys.executable, 'tools/train.py', str(SYNTHETIC_CONFIG), '--work-dir', str(work_dir), '--cfg-options', *TINY,
         *data_options(synthetic_root), 'train_cfg.max_epochs=3', 'train_cfg.val_interval=3',
         f'load_from={trained / "epoch_2.pth"}', 'resume=True'])
    records = [r for r in scalars(work_dir) if 'loss' in r]
    assert [r['iter'] for r in records] == list(range(17, 25))
    assert (work_dir / 'epoch_3.pth').exists()


def test_dist_train_with_two_cpu_processes(synthetic_root, tmp_path):
    work_dir = tmp_path / 'dist'
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(29500 + os.getpid() % 1000),
               PATH=f'{Path(sys.executable).parent}:{os.environ["PATH"]}')
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(SYNTHETIC_CONFIG), '2', '--work-dir', str(work_dir), '--cfg-options', *TINY,
         *data_options(synthetic_root), 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (work_dir / 'epoch_1.pth').exists()
    records = [r for r in scalars(work_dir) if 'loss' in r]
    # 16 images x 2 copies over 2 ranks with batch 4 per rank: 4 iterations per epoch
    assert len(records) == 4
    assert "'backend': 'gloo'" in result.stdout + result.stderr


def test_det_inferencer_and_demo_tool(trained, synthetic_root, tmp_path):
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=str(SYNTHETIC_CONFIG), weights=str(trained / 'epoch_2.pth'), device='cpu',
                               show_progress=False)
    image = next((synthetic_root / 'val').glob('*.png'))
    result = inferencer(str(image), return_datasamples=True)
    pred = result['predictions'][0].pred_instances
    assert pred.bboxes.shape[-1] == 4 and len(pred.scores) == len(pred.labels)
    run([sys.executable, 'tools/demo.py', str(synthetic_root / 'val'), str(SYNTHETIC_CONFIG),
         str(trained / 'epoch_2.pth'), '--out-dir', str(tmp_path / 'demo'), '--score-thr', '0.0'])
    assert len(list((tmp_path / 'demo' / 'vis').glob('*.png'))) == 8
    assert len(list((tmp_path / 'demo' / 'preds').glob('*.json'))) == 8


def test_browse_dataset_draws_real_and_noise_boxes(synthetic_root, tmp_path):
    result = run([sys.executable, 'tools/analysis_tools/browse_dataset.py', str(SYNTHETIC_CONFIG), '--out-dir',
                  str(tmp_path), '--num', '3', '--cfg-options',
                  f'train_dataloader.dataset.data_root={synthetic_root}/'])
    assert len(list(tmp_path.glob('*.png'))) == 3
    text = next(tmp_path.glob('*.txt')).read_text()
    assert 'noise' in text and 'EOS at token' in text
    assert 'real, ' in result.stdout


def test_learning_speed_trains_each_seed_once_and_tabulates_the_last_validation(synthetic_root, tmp_path):
    learning_speed = load_tool('learning_speed')
    command = [sys.executable, 'tools/analysis_tools/learning_speed.py', str(SYNTHETIC_CONFIG), '--seeds', '0', '1',
               '--work-root', str(tmp_path), '--out', str(tmp_path / 'all.json'), '--cfg-options', *TINY,
               *data_options(synthetic_root), 'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=2']
    first = run(command)
    results = json.loads((tmp_path / 'all.json').read_text())
    assert [r['seed'] for r in results] == [0, 1]
    for result in results:
        work_dir = tmp_path / learning_speed.run_name(SYNTHETIC_CONFIG, '') / f'seed{result["seed"]}'
        records = scalars(work_dir)
        assert result['coco/bbox_mAP'] == [r for r in records if 'coco/bbox_mAP' in r][-1]['coco/bbox_mAP']
        assert result['iterations'] == 8 and result['train_seconds'] > 0
        dumped = next(work_dir.glob('*/vis_data/config.py')).read_text()
        assert f'seed={result["seed"]}' in dumped.replace(' ', '')
    assert len(list((tmp_path).rglob('vis_data/scalars.json'))) == 2
    second = run(command)  # finished runs are read back, not trained again
    assert len(list((tmp_path).rglob('vis_data/scalars.json'))) == 2
    assert second.stdout == first.stdout and '| run | mAP' in first.stdout
    other_options = [*command[:-1], 'default_hooks.checkpoint.interval=3']  # same run name, other options
    result = subprocess.run(other_options, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and 'give these runs their own --tag' in result.stderr


def test_learning_speed_names_a_run_that_never_validated(tmp_path):
    learning_speed = load_tool('learning_speed')
    (tmp_path / 'run' / 'vis_data').mkdir(parents=True)
    (tmp_path / 'run' / 'vis_data' / 'scalars.json').write_text(json.dumps({'loss': 1.0, 'iter': 5}) + '\n')
    with pytest.raises(ValueError, match='never validated'):
        learning_speed.last_validation(tmp_path)
    with pytest.raises(FileNotFoundError, match='did not log'):
        learning_speed.last_validation(tmp_path / 'run')


def test_time_budget_gives_each_config_the_reference_seconds_from_per_round_ratios():
    time_budget = load_tool('time_budget')

    class Timed:
        def __init__(self, name, round_times, max_epochs=40, batch_size=16):
            self.name, self.round_times, self.max_epochs = name, round_times, max_epochs
            self.batch_size, self.steps_per_epoch = batch_size, 160 // batch_size

    # the machine slows down 2x in the second round: per-round ratios stay 2 and 0.5; half the batch at 0.6 of the
    # step time is an epoch of twice the steps, 1.2 times the reference's epoch
    reference = Timed('ref', [0.1, 0.2, 0.1])
    rows, budget_s = time_budget.budget_rows(
        [reference, Timed('slow', [0.2, 0.4, 0.2], 7), Timed('fast', [0.05, 0.1, 0.05], 7),
         Timed('half batch', [0.06, 0.12, 0.06], 7, batch_size=8)])
    assert [row['epochs_in_budget'] for row in rows] == [40, 20, 80, 33]
    assert [row['ratio_to_reference'] for row in rows] == pytest.approx([1.0, 2.0, 0.5, 1.2])
    assert budget_s == pytest.approx(40 * 10 * 0.1)


def ceiling_of(config: Path, synthetic_root: Path, **options):
    """``vocabulary_ceiling`` of ``config`` with ``options`` (``--cfg-options``) on the tests' small dataset (its
    val images and annotation file, in every metric of the evaluator)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': f'{synthetic_root}/', **options})
    metrics = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    for metric in metrics:
        metric.ann_file = f'{synthetic_root}/annotations/instances_val.json'
    return load_tool('vocabulary_ceiling').vocabulary_ceiling(cfg)


def test_vocabulary_ceiling_scores_the_ground_truth_and_falls_with_coarser_bins(synthetic_root):
    fine = ceiling_of(SYNTHETIC_CONFIG, synthetic_root)
    coarse = ceiling_of(SYNTHETIC_CONFIG, synthetic_root, **{'model.head.tokenizer.num_bins': 8})
    assert fine['coco/bbox_mAP_50'] == 1.0 and fine['coco/bbox_mAP'] > 0.95, fine
    assert coarse['coco/bbox_mAP'] < fine['coco/bbox_mAP'] - 0.2, coarse


def test_vocabulary_ceiling_reads_the_polygons_back_into_the_annotated_masks(synthetic_root):
    """With the instance segmentation task the ground-truth outlines, through the task's tokens and the prediction's
    rasterisation at the original size, score as the annotation's masks (the test images, 128 px, are resized into the
    112-px frame); too few points per object lose most of the outlines."""
    config = REPO_ROOT / 'configs' / 'pix2seq-v2_r18-tiny_1xb16_26e_synthetic-112.py'
    full = ceiling_of(config, synthetic_root)
    truncated = ceiling_of(config, synthetic_root, **{'model.head.tokenizer.max_points_per_object': 3})
    assert full['coco/segm_mAP_50'] == 1.0 and full['coco/segm_mAP'] > 0.9, full
    assert truncated['coco/segm_mAP'] < full['coco/segm_mAP'] - 0.2, truncated


def test_vocabulary_ceiling_reads_the_keypoints_back(synthetic_root):
    """With the keypoint task the ground-truth points, through the task's tokens and back to the original image, score
    keypoint AP 1 with the recipe's bins and OKS constants; 8 bins move them out of the OKS tolerance."""
    config = REPO_ROOT / 'configs' / 'pix2seq-v2-keypoints_r18-tiny_1xb16_28e_synthetic-112.py'
    fine = ceiling_of(config, synthetic_root)
    coarse = ceiling_of(config, synthetic_root, **{'model.head.tokenizer.num_bins': 8})
    assert fine['coco/keypoints_mAP'] == 1.0, fine
    assert coarse['coco/keypoints_mAP'] < 0.5, coarse


def test_parallel_decoding_tool_scores_each_decoding_side_by_side(synthetic_root, tmp_path):
    """Token by token: 5 steps per object slot; in blocks with the drafts kept: one step per slot; verified: the
    token-by-token detections, in between; the same runs of its ONNX export give the same steps and metrics."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    config = REPO_ROOT / 'configs' / 'ablations' / 'pix2seq_r18-tiny_1xb16_30e_synthetic-112_block-decoding.py'
    from model_utils import widen_decoder

    from pix2seq_mmdet.deploy.export import export_onnx
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    widen_decoder(model)  # a random decoder that writes varied tokens, and (constrained, never ending) boxes to score
    with torch.no_grad():
        model.head.output_bias[model.head.tokenizer.EOS] = -100.0
    checkpoint = tmp_path / 'block.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    options = dict(item.split('=', 1) for item in data_options(synthetic_root))
    options.update({'test_dataloader.batch_size': '8', 'test_dataloader.num_workers': '0',
                    'test_dataloader.persistent_workers': 'False',
                    'model.test_cfg.constrained': 'True', 'work_dir': str(tmp_path / 'work')})
    export_onnx(model, tmp_path / 'onnx', dynamic_batch=True, check=False)
    rows = load_tool('parallel_decoding').main(
        [str(config), str(checkpoint), '--out', str(tmp_path / 'result.json'), '--onnx', str(tmp_path / 'onnx'),
         '--cfg-options', *[f'{key}={value}' for key, value in options.items()]])
    slots = model.head.tokenizer.max_objects
    torch_rows, onnx_rows = rows[:3], rows[3:]
    serial, verified, drafts = torch_rows
    assert serial['decoder_steps_per_batch'] == 5 * slots and drafts['decoder_steps_per_batch'] == slots
    assert all(row['detections_per_image'] > 0 and 'coco/bbox_mAP' in row and row['ms_per_image'] > 0
               for row in torch_rows)
    assert verified['detections_per_image'] == serial['detections_per_image']
    assert verified['coco/bbox_mAP'] == serial['coco/bbox_mAP']
    for torch_row, onnx_row in zip(torch_rows, onnx_rows):  # the same decoding in ONNX Runtime: the same metrics
        assert (torch_row['backend'], onnx_row['backend']) == ('PyTorch', 'ONNX Runtime')
        assert onnx_row['coco/bbox_mAP'] == torch_row['coco/bbox_mAP'] and onnx_row['ms_per_image'] > 0
        assert onnx_row['decoder_steps_per_batch'] == torch_row['decoder_steps_per_batch']
    written = json.loads((tmp_path / 'result.json').read_text())
    assert written['rows'] == rows and written['images'] > 0
