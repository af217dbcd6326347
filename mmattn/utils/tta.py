"""``tools/test.py --tta``: wrap the model in the config's test-time-augmentation model.

Segmentation follows MMSegmentation's ``tools/test.py --tta``: the recipe's ``tta_pipeline``
(the papers' multi-scale + flip: ratios 0.5-1.75 of the image, each flipped and not) feeds
``SegTTAModel``, which averages the views' class scores. Detection follows MMDetection's:
``DetTTAModel`` (boxes flipped back, class-wise NMS), or ``mmattn.InstanceSegTTAModel`` when the
model predicts masks; a config without ``tta_pipeline`` gets MMDetection's default (flip).
"""

import copy

from mmengine.config import Config, ConfigDict

from .cli import UserInputError

# MMDetection's tools/test.py defaults, used when a detection config has no tta_model/pipeline.
DET_TTA_MODEL = dict(
    type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
)
DET_META_KEYS = (
    'img_id',
    'img_path',
    'ori_shape',
    'img_shape',
    'scale_factor',
    'flip',
    'flip_direction',
)


def _leaf_dataset(dataset_cfg):
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _has_masks(model_cfg) -> bool:
    roi_head = model_cfg.get('roi_head') or {}
    return roi_head.get('mask_head') is not None


def apply_tta(cfg: Config, config_path: str = 'the config') -> str:
    """Turn ``cfg`` into its TTA form in place; return a one-line description of the views."""
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmseg':
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            raise UserInputError(
                f'--tta: {config_path} has no {" / ".join(missing)}; inherit '
                f'configs/_base_/datasets/ade20k.py (or an mmseg::_base_/datasets/ config) or '
                f'define tta_pipeline (TestTimeAug) and tta_model=dict(type="SegTTAModel")'
            )
    else:
        if 'tta_model' not in cfg:
            cfg.tta_model = copy.deepcopy(DET_TTA_MODEL)
        if 'tta_pipeline' not in cfg:
            pipeline = copy.deepcopy(_leaf_dataset(cfg.test_dataloader.dataset).pipeline)
            pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[
                    [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
                    [dict(type='PackDetInputs', meta_keys=DET_META_KEYS)],
                ],
            )
            cfg.tta_pipeline = pipeline
        if _has_masks(cfg.model) and cfg.tta_model.get('type') == 'DetTTAModel':
            # MMDetection's DetTTAModel refuses masks; ours merges them (same boxes).
            cfg.tta_model['type'] = 'mmattn.InstanceSegTTAModel'
        if str(cfg.tta_model.get('type', '')).startswith('mmattn.'):
            import mmattn.det  # noqa: F401  (registers InstanceSegTTAModel)
    tta_model = ConfigDict(copy.deepcopy(cfg.tta_model))
    tta_model['module'] = cfg.model
    # An mmattn wrapper builds in the mmattn scope: the detector must name its own.
    tta_model['module'].setdefault('_scope_', scope)
    cfg.model = tta_model
    _leaf_dataset(cfg.test_dataloader.dataset).pipeline = cfg.tta_pipeline
    return f'{tta_model["type"]} over {describe_views(cfg.tta_pipeline)}'


def describe_views(pipeline) -> str:
    """``'6 scales x 2 flips'`` for a pipeline ending in ``TestTimeAug``."""
    tta = [t for t in pipeline if t.get('type') == 'TestTimeAug']
    if not tta:
        return 'the test pipeline (no TestTimeAug step)'
    counts = [len(step) for step in tta[0]['transforms']]
    n = 1
    for c in counts:
        n *= c
    return f'{n} views per image ({" x ".join(str(c) for c in counts)})'
