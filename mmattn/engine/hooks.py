"""Crash-safe checkpointing: a run killed at any moment resumes from a complete checkpoint.

MMEngine's ``CheckpointHook`` has three windows in which a ``SIGKILL`` (OOM killer, pre-empted
job, power loss) loses the run:

* the checkpoint is written in place (``open(path, 'wb').write``): a kill mid-write leaves a
  truncated ``iter_N.pth`` under the final name;
* ``last_checkpoint`` is rewritten in place: a kill between truncation and write leaves an
  empty pointer, and ``--resume`` then fails;
* with ``max_keep_ckpts``, the oldest checkpoint is deleted *before* the new one is written:
  with ``max_keep_ckpts=1`` a kill during the save leaves no checkpoint at all.

:class:`AtomicCheckpointHook` writes every file to a temporary name in the same folder,
``fsync``s it and renames it into place (atomic on POSIX), updates the pointer the same way and
only then deletes outdated checkpoints. :func:`find_resume_checkpoint` picks the newest
*complete* checkpoint (CRC-checked), so even a work dir written by the stock hook resumes.
It also stores the global torch RNG state in the checkpoint, so that a deterministic run
resumed after a kill logs the same losses as the uninterrupted run.
"""

import glob
import os.path as osp
import re
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.fileio.backends.registry_utils import backends as _registered_backends
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import Registry

from mmattn.utils.atomic import atomic_write, remove_stale_tmp_files
from mmattn.utils.checkpoint import is_complete_checkpoint

__all__ = [
    'AtomicCheckpointHook',
    'enable_crash_safe_checkpoints',
    'find_resume_checkpoint',
    'is_complete_checkpoint',
    'remove_stale_tmp_files',
]

#: mmattn's hook registry (scope ``mmattn``), so configs of any default scope can name
#: ``type='mmattn.AtomicCheckpointHook'``.
HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='mmattn',
    locations=['mmattn.engine.hooks', 'mmattn.engine.faults'],
)

ATOMIC_BACKEND = 'mmattn_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic ``put``/``put_text``."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(str(filepath), obj, encoding=encoding)


def register_atomic_backend() -> None:
    """Register :class:`AtomicLocalBackend` with MMEngine's file I/O, once, when first used."""
    if ATOMIC_BACKEND not in _registered_backends:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend)


def _ckpt_step(path: str) -> int:
    match = re.search(r'(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else -1


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir``, or ``None`` if there is none.

    Candidates are the file named by ``last_checkpoint`` and the ``iter_*.pth`` /
    ``epoch_*.pth`` files in ``work_dir``; the one with the highest step that passes
    :func:`is_complete_checkpoint` wins. A pointer that is empty, stale (a kill between the
    checkpoint's rename and the pointer's) or names a truncated file is thus never trusted
    blindly, and every file skipped is reported.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    candidates = set()
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8') as f:
            named = f.read().strip()
        if named:
            candidates.add(named)
    for pattern in ('iter_*.pth', 'epoch_*.pth'):
        candidates.update(glob.glob(osp.join(glob.escape(work_dir), pattern)))

    def order(path):
        return (_ckpt_step(path), osp.getmtime(path) if osp.exists(path) else 0.0)

    skipped = []
    for path in sorted(candidates, key=order, reverse=True):
        if is_complete_checkpoint(path):
            if skipped:
                print_log(
                    f'resume: skipped incomplete or missing checkpoint(s) {skipped}; '
                    f'resuming from {path}',
                    logger='current',
                    level=30,
                )
            return path
        skipped.append(path)
    if skipped:
        print_log(
            f'resume: no complete checkpoint in {work_dir} (incomplete or missing: '
            f'{skipped}); training starts from scratch',
            logger='current',
            level=30,
        )
    return None


def _rng_state() -> dict:
    rng = dict(torch=torch.get_rng_state())
    if torch.cuda.is_available():
        rng['cuda'] = torch.cuda.get_rng_state_all()
    return rng


def _set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng['torch'])
    cuda = rng.get('cuda')
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` whose saves survive ``SIGKILL`` at any moment.

    Same arguments and behaviour as the parent, except that on a local ``out_dir``:
    checkpoint files and ``last_checkpoint`` are written atomically (temporary file, fsync,
    rename), the pointer is updated only after the checkpoint is complete, outdated
    checkpoints are deleted only after that, and the torch RNG state is saved and restored on
    resume, and kept out of validation's reach (deterministic runs continue bit-for-bit).
    """

    def __init__(self, *args, strict_load: Optional[bool] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.strict_load = strict_load
        self._rng_to_restore = None

    def _is_local(self, runner) -> bool:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        return '://' not in str(out_dir)

    def before_train(self, runner) -> None:
        atomic = (
            self._is_local(runner) and self.backend_args is None and self.file_client_args is None
        )
        if atomic:
            register_atomic_backend()
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        if atomic and is_main_process():
            for folder in {self.out_dir, runner.work_dir}:
                stale = remove_stale_tmp_files(folder)
                if stale:
                    runner.logger.warning(
                        f'removed {len(stale)} partial file(s) of an interrupted save: {stale}'
                    )
        if self._rng_to_restore is not None:
            # After MMEngine's resume re-seeded everything: put back the state the interrupted
            # run had, so dropout / RoI sampling draw the same numbers as without the kill.
            _set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def before_val(self, runner) -> None:
        # Validation must not move the training random stream (its DataLoader draws a seed
        # from the global generator): a run resumed from the checkpoint written just before a
        # validation would otherwise draw other dropout masks than the uninterrupted run.
        self._rng_outside_val = _rng_state()

    def after_val(self, runner) -> None:
        state = getattr(self, '_rng_outside_val', None)
        if state is not None:
            _set_rng_state(state)
            self._rng_outside_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # a save during validation (save_best) stores the training stream, not validation's
        outside_val = getattr(self, '_rng_outside_val', None)
        checkpoint.setdefault('meta', {})['rng_state'] = outside_val or _rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        from mmengine.model import BaseTTAModel, is_model_wrapper

        from mmattn.utils.data_checks import compare_state_dicts, model_state_dict

        resume = getattr(runner, '_resume', False)
        # MMEngine loads non-strictly and only warns: a checkpoint of another family would
        # train or be evaluated from random weights. Refuse it here, before it is applied.
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, BaseTTAModel):  # tools/test.py --tta: the checkpoint is the module's
            model = model.module
        where = f'checkpoint {getattr(runner, "_load_from", None) or ""}'.strip()
        strict = resume if self.strict_load is None else self.strict_load
        compare_state_dicts(model.state_dict(), model_state_dict(checkpoint), where, strict=strict)
        # Only a resume continues the random stream; load_from / testing must not.
        if resume:
            self._rng_to_restore = checkpoint.get('meta', {}).get('rng_state')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if self.backend_args != dict(backend=ATOMIC_BACKEND):
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = []
        if self.max_keep_ckpts > 0:
            if not (len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    outdated.append(self.keep_ckpt_ids.popleft())
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if not is_main_process():
            return
        # NOTE: order matters: complete checkpoint -> pointer -> delete outdated ones.
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)


def enable_crash_safe_checkpoints(cfg, strict_load: Optional[bool] = None) -> None:
    """Swap the config's stock ``CheckpointHook`` for :class:`AtomicCheckpointHook`.

    A custom checkpoint hook type chosen by the user is left alone.

    Args:
        cfg (Config): The run's config, changed in place.
        strict_load (bool, optional): Require the loaded checkpoint to fit the model exactly
            (testing); None: exactly when resuming, loosely for ``load_from`` fine-tuning.
    """
    hooks = cfg.get('default_hooks')
    if not hooks or not hooks.get('checkpoint'):
        return
    ckpt = hooks['checkpoint']
    if ckpt.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        ckpt['type'] = 'mmattn.AtomicCheckpointHook'
        if strict_load is not None:
            ckpt['strict_load'] = strict_load
