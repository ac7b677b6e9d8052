import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_CONFIG = REPO_ROOT / 'configs' / 'pix2seq_r18-tiny_1xb16_34e_synthetic.py'


def load_script(path: Path):
    """A script of tools/ imported as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic COCO dataset written by the project's generator (16 train, 8 val images)."""
    root = tmp_path_factory.mktemp('synthetic')
    subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'generate_synthetic.py'), '--out-dir', str(root),
                    '--num-train', '16', '--num-val', '8', '--seed', '3'], check=True, capture_output=True)
    return root


@pytest.fixture(scope='session')
def synthetic_cfg():
    """The synthetic config, loaded once (registers the package through custom_imports)."""
    from mmengine.config import Config
    return Config.fromfile(str(SYNTHETIC_CONFIG))


@pytest.fixture(scope='session', autouse=True)
def mmdet_scope():
    """mmdet's modules registered and its scope the default, as the configs' `default_scope` makes it."""
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
