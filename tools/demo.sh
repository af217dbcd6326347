#!/usr/bin/env bash
# The main job (`make demo`): train and evaluate an instance-segmentation detector (Mask R-CNN)
# and a semantic segmenter (Semantic FPN), both with a narrow Shunted Transformer backbone
# trained from scratch, on the bundled shapes data through tools/train.py and tools/test.py,
# then print COCO bbox/segm mAP and mIoU, plot each run's loss and validation curves
# (WORK/{det,seg}/curves.png) and draw both models' predictions on a bundled validation image
# (WORK/pictures/). About 13 minutes on 2 CPU cores.
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

run() {  # run CONFIG NAME VALS: train (validating VALS times), evaluate, plot the curves
  local config=$1 name=$2 vals=$3
  local iters
  iters=$("$PY" -c "from mmengine.config import Config; print(Config.fromfile('$config').train_cfg.max_iters)")
  echo "== training $config"
  "$PY" tools/train.py "$config" --work-dir "$WORK/$name" \
    --cfg-options train_cfg.val_interval=$(( iters / vals ))
  local ckpt
  ckpt=$(cat "$WORK/$name/last_checkpoint")
  echo "== evaluating $ckpt"
  "$PY" tools/test.py "$config" "$ckpt" --work-dir "$WORK/$name/test"
  "$PY" tools/analysis_tools/analyze_logs.py "$WORK/$name" --title "$(basename "$config" .py)"
}

start=$(date +%s)
run "$DET" det 4
run "$SEG" seg 4
# The pictures: both models on one bundled validation image (the one with the most objects),
# upscaled 4x so that the drawn labels are legible (the test pipeline resizes it back to 128 px).
img=$("$PY" - "$WORK" <<'PYEOF'
import json, sys
import mmcv
ann = json.load(open('data/shapes_coco/annotations/instances_val.json'))
count = {}
for a in ann['annotations']:
    count[a['image_id']] = count.get(a['image_id'], 0) + 1
best = max(ann['images'], key=lambda i: (count.get(i['id'], 0), -i['id']))
img = mmcv.imread(f"data/shapes_coco/val/{best['file_name']}")
out = f"{sys.argv[1]}/pictures/{best['file_name'].rsplit('.', 1)[0]}_x4.png"
mmcv.imwrite(mmcv.imrescale(img, 4.0, interpolation='bicubic'), out)
print(out)
PYEOF
)
det_pic=$("$PY" demo/image_demo.py "$img" "$DET" --weights "$(cat "$WORK/det/last_checkpoint")" \
  --out-dir "$WORK/pictures" | tail -n 1 | cut -d: -f1)
seg_pic=$("$PY" demo/image_demo.py "$img" "$SEG" --weights "$(cat "$WORK/seg/last_checkpoint")" \
  --out-dir "$WORK/pictures" | tail -n 1 | cut -d: -f1)
# Both side by side (what docs/demo_predictions.png in the README shows).
"$PY" - "$det_pic" "$seg_pic" "$WORK/pictures/demo_predictions.png" <<'PYEOF'
import sys
import mmcv
import numpy as np
det, seg = (mmcv.imread(p) for p in sys.argv[1:3])
h = max(det.shape[0], seg.shape[0])
pad = lambda im: np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)), constant_values=255)
gap = np.full((h, 16, 3), 255, np.uint8)
mmcv.imwrite(np.concatenate([pad(det), gap, pad(seg)], axis=1), sys.argv[3])
PYEOF
"$PY" - "$WORK" "$(( $(date +%s) - start ))" "$DET" "$SEG" "$det_pic" "$seg_pic" <<'PYEOF'
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
print(f'curves:   {work}/det/curves.png  {work}/seg/curves.png')
print(f'pictures: {sys.argv[5]}  {sys.argv[6]}  {work}/pictures/demo_predictions.png')
print('=' * 64)
PYEOF
