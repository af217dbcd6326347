#!/usr/bin/env bash
# Idempotent set-up of mmattn's environment: a project-local virtualenv holding torch (pinned),
# mmcv 2.1.0 built from source with its compiled ops, mmengine, mmdet, mmsegmentation and
# mmattn itself (editable). A second run finishes in seconds: it only checks a stamp.
#
# Environment knobs:
#   MMATTN_VENV   where the virtualenv lives            (default: <repo>/.venv)
#   MMATTN_CACHE  where the built mmcv wheel is cached  (default: ~/.cache/mmattn)
#   PYTHON        the interpreter that creates the venv (default: python3)
#   TORCH_SPEC    the torch to install if none is there (default: torch==2.13.0)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMATTN_VENV:-$ROOT/.venv}
CACHE=${MMATTN_CACHE:-$HOME/.cache/mmattn}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
MMCV_VERSION=2.1.0
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check -q)

log() { echo "[setup $(date +%H:%M:%S)] $*"; }

# The stamp is a hash of everything that decides what gets installed.
want=$(cat "$ROOT/setup.py" "$ROOT"/requirements/*.txt "$ROOT/tools/setup_env.sh" | sha1sum | cut -c1-16)
stamp=$VENV/.mmattn-setup-$want
if [ -f "$stamp" ] && "$PY" -c 'import mmcv.ops, mmdet, mmseg, mmattn' 2>/dev/null; then
  log "environment up to date ($VENV)"
  exit 0
fi

if [ ! -x "$PY" ]; then
  log "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# 1. torch first, pinned: a range would let pip pull the newest CUDA build (GBs).
#    An already installed torch is kept (a GPU user brings their own).
if "$PY" -c 'import torch' 2>/dev/null; then
  log "keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  log "installing $TORCH_SPEC"
  "${PIP[@]}" install "$TORCH_SPEC"
fi
# pkg_resources (used by mmengine to find mmdet::/mmseg:: configs) is gone from setuptools >= 81,
# setuptools 80 makes every editable install a PEP 660 one (see step 3), and torch 2.13 asks for
# >= 77.0.3.
SETUPTOOLS_SPEC='setuptools>=77.0.3,<80'
"${PIP[@]}" install numpy wheel "$SETUPTOOLS_SPEC"

# 2. mmcv with compiled ops (RoIAlign, NMS, ...). No CPU wheel exists on the registry, so build
#    it once from source and cache the wheel per (python, torch) outside the work tree.
if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  key=$("$PY" -c 'import sys, torch; print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}")')
  wheel_dir=$CACHE/wheels/$key
  wheel=$(ls "$wheel_dir"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION with ops from source (about 13 minutes on 2 cores, once)"
    mkdir -p "$wheel_dir"
    # mmcv's setup.py imports pkg_resources: build with setuptools < 70, then restore the
    # setuptools torch asks for. The wheel is built into a temporary folder and moved into the
    # cache only when complete, so an interrupted build never leaves a broken cached wheel.
    tmp=$(mktemp -d "$CACHE/build.XXXXXX")
    hb=
    trap 'rm -rf "$tmp"; [ -z "$hb" ] || kill "$hb" 2>/dev/null' EXIT
    "${PIP[@]}" install 'setuptools<70' ninja
    # The compiler is silent under pip -q for the whole build: a line a minute shows it runs.
    # (The sleep writes nowhere, so a killed heartbeat leaves nothing holding the output open.)
    t0=$(date +%s)
    ( while sleep 60 </dev/null >/dev/null 2>&1; do
        log "still building mmcv: $(( ($(date +%s) - t0) / 60 )) min (about 13 on 2 cores)"
      done ) &
    hb=$!
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$tmp"
    kill "$hb" 2>/dev/null || true
    hb=
    log "mmcv built in $(( ($(date +%s) - t0) / 60 )) min"
    mv "$tmp"/mmcv-$MMCV_VERSION-*.whl "$wheel_dir"/
    "${PIP[@]}" install "$SETUPTOOLS_SPEC"
    wheel=$(ls "$wheel_dir"/mmcv-$MMCV_VERSION-*.whl | head -n 1)
  else
    log "reusing cached $wheel"
  fi
  "${PIP[@]}" install "$wheel"
fi

# 3. The rest of the stack and mmattn itself (torch and mmcv are already satisfied).
log "installing mmengine, mmdet, mmsegmentation and mmattn"
"${PIP[@]}" install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
  -r "$ROOT/requirements/mim.txt"
# mim without its dataset-download dependency chain (see requirements/mim.txt)
"${PIP[@]}" install --no-deps openmim==0.3.9
# mmattn as a legacy (egg-link) editable install: mim and MMEngine's `mmattn::` config paths look
# for the package beside its distribution's metadata, which a PEP 660 editable install puts in
# site-packages, away from the code. A pip that no longer does legacy installs gets PEP 660.
if ! "${PIP[@]}" install --no-deps --no-build-isolation --no-use-pep517 -e "$ROOT" 2>/dev/null; then
  log "this pip refuses legacy editable installs: PEP 660 install (mim then needs 'pip install .')"
  "${PIP[@]}" install --no-deps -e "$ROOT"
fi
"$PY" -c 'import mmcv.ops, mmdet, mmseg, mmattn'

rm -f "$VENV"/.mmattn-setup-*
touch "$stamp"
log "environment ready ($VENV)"
