#!/usr/bin/env bash
# The main job (`make demo`): train and evaluate an instance-segmentation detector (Mask R-CNN)
# and a semantic segmenter (Semantic FPN), both with a narrow Shunted Transformer backbone
# trained from scratch, on the bundled shapes data through tools/train.py and tools/test.py,
# then print COCO bbox/segm mAP and mIoU. About 13 minutes on 2 CPU cores.
# DEMO_DET_CONFIG / DEMO_SEG_CONFIG pick other configs (e.g. the ResNet-18 baseline
# configs/shapes/mask-rcnn_r18_fpn_shapes.py, or the Agent-PVT configs/shapes/mask-rcnn_agent-
# pvt-tiny_fpn_shapes.py).
set -euo pipefail
PY=${1:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DET=${DEMO_DET_CONFIG:-configs/shapes/mask-rcnn_shunted-nano_fpn_shapes.py}
SEG=${DEMO_SEG_CONFIG:-configs/shapes/fpn_shunted-nano_2k_shapes.py}
WORK=${DEMO_WORK_DIR:-work_dirs/demo}

run() {  # run CONFIG NAME: train, then evaluate the last checkpoint
  local config=$1 name=$2
  echo "== training $config"
  "$PY" tools/train.py "$config" --work-dir "$WORK/$name"
  local ckpt
  ckpt=$(cat "$WORK/$name/last_checkpoint")
  echo "== evaluating $ckpt"
  "$PY" tools/test.py "$config" "$ckpt" --work-dir "$WORK/$name/test"
}

start=$(date +%s)
run "$DET" det
run "$SEG" seg
"$PY" - "$WORK" "$(( $(date +%s) - start ))" "$DET" "$SEG" <<'PYEOF'
import json, sys
from mmengine.config import Config
work, secs = sys.argv[1], int(sys.argv[2])
det_backbone, seg_backbone = (Config.fromfile(c).model.backbone.type for c in sys.argv[3:5])
det = json.load(open(f'{work}/det/test/metrics.json'))
seg = json.load(open(f'{work}/seg/test/metrics.json'))
print('=' * 64)
print(f'demo finished in {secs // 60}m{secs % 60:02d}s')
if 'coco/bbox_mAP' in det:
    print(f"Mask R-CNN ({det_backbone})  bbox mAP {det['coco/bbox_mAP']:.3f}"
          f"  segm mAP {det['coco/segm_mAP']:.3f}  (bbox mAP@50 {det['coco/bbox_mAP_50']:.3f})")
else:  # CocoMetric returns nothing when no box passes the score threshold
    print(f'Mask R-CNN ({det_backbone})  no detection above the score threshold: mAP 0')
print(f"Semantic FPN ({seg_backbone})  mIoU {seg['mIoU']:.2f}  aAcc {seg['aAcc']:.2f}")
print('=' * 64)
PYEOF
