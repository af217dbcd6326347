"""What ``tools/train.py`` and ``tools/test.py`` do between reading the config and running.

The model checks live here, with the run, and not in ``mmattn.utils``: checking a backbone
config means building it, so this layer imports the models; the data and checkpoint checks of
:mod:`mmattn.utils.data_checks` only read files.
"""

from mmattn.utils.cli import UserInputError, check_dataset_paths
from mmattn.utils.data_checks import (
    check_checkpoint_file,
    check_dataset_contents,
    compare_state_dicts,
    model_state_dict,
)


def check_model_config(cfg) -> None:
    """Build an mmattn backbone of ``cfg`` once, turning config mistakes into one line.

    Unknown arch names, attention types and ``out_indices`` fail with the valid choices, and a
    ``Pretrained`` checkpoint must belong to that backbone.
    """
    model = cfg.get('model') or {}
    backbone = model.get('backbone')
    if not isinstance(backbone, dict) or not str(backbone.get('type', '')).startswith('mmattn.'):
        return
    from mmattn.models import backbones
    from mmattn.registry import MODELS

    name = backbone['type'].split('.', 1)[1]
    if MODELS.get(name) is None:
        valid = sorted(
            k for k, v in MODELS.module_dict.items() if v.__module__.startswith(backbones.__name__)
        )
        raise UserInputError(
            f"model.backbone.type 'mmattn.{name}' is not an mmattn backbone; "
            f'valid: {", ".join(valid)}'
        )
    args = {k: v for k, v in backbone.items() if k not in ('type', 'init_cfg', '_delete_')}
    try:
        built = MODELS.build(dict(type=name, _scope_='mmattn', **args))
    except (KeyError, ValueError, TypeError, AssertionError, IndexError) as err:
        msg = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
        raise UserInputError(
            f'model.backbone (mmattn.{name}) is invalid: '
            f'{msg.splitlines()[0] if msg else type(err).__name__}; '
            f'fix the config'
        ) from None
    init = backbone.get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained' and init.get('checkpoint'):
        path = init['checkpoint']
        if '://' in str(path):
            return
        check_checkpoint_file(path, 'model.backbone.init_cfg checkpoint')
        from mmattn.utils.checkpoint import safe_load

        weights = model_state_dict(safe_load(path), init.get('prefix'))
        compare_state_dicts(built.state_dict(), weights, f'backbone checkpoint {path}', strict=True)


def preflight(cfg, splits=('train', 'val')) -> None:
    """All pre-flight checks of a run: data contents, model config, checkpoint to load."""
    check_dataset_contents(cfg, splits)
    check_model_config(cfg)
    if cfg.get('load_from'):
        what = 'checkpoint to resume from' if cfg.get('resume') else 'checkpoint'
        check_checkpoint_file(cfg.load_from, what)


def build_runner(cfg, splits, compile_backend=None, before_build=None):
    """Check ``cfg``'s datasets of ``splits`` (paths, then contents), its model and the
    checkpoint to load, call ``before_build(cfg)`` if given (e.g. the TTA wrapping), then build
    the runner (and compile its backbone if asked)."""
    from mmengine.runner import Runner

    check_dataset_paths(cfg, splits=splits)
    preflight(cfg, splits=splits)
    if before_build is not None:
        before_build(cfg)
    runner = Runner.from_cfg(cfg)
    if compile_backend:
        from mmattn.engine.compile import compile_backbone

        compile_backbone(runner.model, backend=compile_backend)
    return runner
