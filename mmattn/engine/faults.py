"""Faults a long run meets: a preemption signal, a non-finite loss, a full disk.

Three MMEngine hooks, registered in the ``mmattn`` scope. ``tools/train.py`` adds all three
(:func:`enable_fault_handling`); with MMDetection's or MMSegmentation's own ``train.py`` a
config opts in with::

    custom_imports = dict(imports=['mmattn.models', 'mmattn.engine.faults'],
                          allow_failed_imports=False)
    custom_hooks = [dict(type='mmattn.PreemptionHook'),
                    dict(type='mmattn.NonFiniteLossHook', policy='stop'),
                    dict(type='mmattn.WriteErrorHook')]

* :class:`PreemptionHook`: on SIGTERM (Slurm's warning before the kill) or SIGINT, the
  iteration in progress finishes, the checkpoint hook saves (atomically, with
  :class:`~mmattn.engine.hooks.AtomicCheckpointHook`), one line ``preempted at iteration N,
  checkpoint PATH`` is logged and the process exits with status ``128 + signal`` (143 for
  SIGTERM, 130 for SIGINT: what a shell reports for a process the signal ended, so a scheduler
  still sees a terminated job). ``--resume`` continues from that checkpoint.
* :class:`NonFiniteLossHook`: a non-finite total loss stops the run before the optimizer
  touches the weights (``policy='stop'``), naming the iteration and the non-finite loss terms;
  or, with ``policy='skip'``, the step is skipped, counted in the log, and the run stops once
  more than ``max_skips`` steps were skipped.
* :class:`WriteErrorHook`: a log or scalar file that cannot be written (full disk, quota, I/O
  error) ends the run with that file's name instead of a logging traceback on every line.
"""

import logging
import os
import os.path as osp
import signal
import sys
import threading
from typing import Optional, Sequence

import torch
from mmengine.hooks import CheckpointHook, Hook

from mmattn.utils.cli import (
    EXIT_NONFINITE_LOSS,
    EXIT_WRITE_FAILED,
    WRITE_ERRNOS,
    NonFiniteLossError,
    UserInputError,
)

from .hooks import HOOKS

__all__ = [
    'EXIT_NONFINITE_LOSS',
    'EXIT_WRITE_FAILED',
    'NonFiniteLossError',
    'NonFiniteLossHook',
    'PreemptionHook',
    'WRITE_ERRNOS',
    'WriteErrorHook',
    'enable_fault_handling',
    'preempted_exit_code',
]


def preempted_exit_code(signum: int) -> int:
    """Exit status of a preempted run: ``128 + signum`` (143 SIGTERM, 130 SIGINT)."""
    return 128 + int(signum)


def _unwrap(model):
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model


def _all_ranks_max(value: int) -> int:
    """The largest ``value`` over the ranks (the value itself outside distributed runs)."""
    from mmengine.dist import all_reduce, get_world_size

    if get_world_size() <= 1:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    all_reduce(t, op='max')  # moves the tensor to the backend's device and back
    return int(t.item())


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Save and exit cleanly when the job is asked to stop (SIGTERM / SIGINT).

    The handlers are installed when the hook is built, i.e. while the runner is being built
    and before the training dataloader forks its workers: a worker inherits them and ignores
    the signal (the process group gets it too, e.g. Ctrl-C), so no worker dies mid-batch.
    Before training starts and after it ends, a signal has its usual effect. A second SIGINT
    while the save is pending interrupts at once.

    In a distributed run every rank checks after each iteration whether any rank got the
    signal (one small all-reduce), so all ranks stop after the same iteration.

    Args:
        signals (Sequence[str]): Names of the signals to catch.
            Defaults to ``('SIGTERM', 'SIGINT')``.
    """

    # After CheckpointHook (VERY_LOW): a save due at this iteration is reused, not repeated.
    priority = 'LOWEST'

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGINT')) -> None:
        self.signals = []
        for name in signals:
            num = getattr(signal, str(name), None)
            if not isinstance(num, signal.Signals):
                raise ValueError(
                    f'PreemptionHook: unknown signal {name!r}; use e.g. SIGTERM, SIGINT, SIGUSR1'
                )
            self.signals.append(num)
        self._pid = os.getpid()
        self._armed = False
        self._received: Optional[int] = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for num in self.signals:
                self._previous[num] = signal.signal(num, self._handle)

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            return  # a dataloader worker: the main process decides
        if not self._armed or (self._received is not None and signum == signal.SIGINT):
            self._restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)  # the default action, now that ours is gone
            return
        self._received = signum
        # No logging here: the logging lock may be held by the interrupted frame.
        os.write(
            2,
            f'{signal.Signals(signum).name} received: the checkpoint is saved after '
            f'the current iteration\n'.encode(),
        )

    def _restore(self) -> None:
        for num, previous in self._previous.items():
            if previous is not None and threading.current_thread() is threading.main_thread():
                signal.signal(num, previous)
        self._previous = {}

    def before_train(self, runner) -> None:
        self._armed = True

    def after_train(self, runner) -> None:
        self._armed = False
        self._restore()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        signum = _all_ranks_max(self._received or 0)
        if not signum:
            return
        step = runner.iter + 1
        path = self._save(runner, step)
        from mmengine.dist import barrier, get_world_size

        if get_world_size() > 1:
            barrier()  # no rank leaves (and gets its peers killed) before rank 0 has saved
        name = signal.Signals(signum).name
        runner.logger.warning(
            f'preempted at iteration {step}, checkpoint {path} ({name}; continue with --resume)'
        )
        self._armed = False
        self._restore()
        for handler in runner.logger.handlers:
            handler.flush()
        raise SystemExit(preempted_exit_code(signum))

    @staticmethod
    def _save(runner, step: int) -> Optional[str]:
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is None:
            path = osp.join(runner.work_dir, f'iter_{step}.pth')
            runner.save_checkpoint(runner.work_dir, f'iter_{step}.pth', by_epoch=False)
            return path
        if hook.by_epoch:
            # MMEngine resumes an epoch-based loop at the start of an epoch only: the epoch's
            # first iterations would be repeated, so a mid-epoch save could not resume exactly.
            runner.logger.warning(
                'preemption in an epoch-based loop: no mid-epoch checkpoint '
                'is written; --resume restarts from the last epoch '
                'checkpoint'
            )
            return hook.last_ckpt
        if hook.last_ckpt is None or osp.basename(str(hook.last_ckpt)) != hook.filename_tmpl.format(
            step
        ):
            hook._save_checkpoint_with_step(runner, step, meta=dict(epoch=runner.epoch, iter=step))
        return hook.last_ckpt


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop at, or skip, a training step whose total loss is not finite.

    The check runs inside ``optim_wrapper.update_params``, before the backward pass, so a
    non-finite step never reaches the weights or the optimizer state; the last checkpoint is
    the last good state. ``policy='stop'`` raises :class:`NonFiniteLossError` naming the
    iteration and the loss terms that are not finite. ``policy='skip'`` drops the step (no
    backward, no optimizer step; with gradient accumulation the window's gradients so far are
    dropped too), logs ``skipped K of at most M``, and stops once more than ``max_skips``
    steps were skipped; ``train/skipped_steps`` is logged with the losses, and the count
    survives ``--resume``.

    With fp16 AMP (``AmpOptimWrapper``) the loss scaler still skips steps whose *scaled
    gradients* overflow and lowers the scale; those steps have a finite loss and are not
    counted here. A non-finite *loss* is caught before the scaler sees it, so its scale is not
    lowered for a step it never ran. In a distributed run the ranks agree (one all-reduce), so
    all skip or stop together.

    Args:
        policy (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_skips (int): With ``'skip'``, the most steps skipped before the run stops.
            Defaults to 10.
    """

    priority = 'VERY_HIGH'
    POLICIES = ('stop', 'skip')

    def __init__(self, policy: str = 'stop', max_skips: int = 10) -> None:
        if policy not in self.POLICIES:
            raise ValueError(f'nan_policy {policy!r} is not one of {list(self.POLICIES)}')
        if int(max_skips) < 0:
            raise ValueError(f'max_skips must be >= 0, not {max_skips}')
        self.policy = policy
        self.max_skips = int(max_skips)
        self.skipped = 0
        self._terms = {}
        self._runner = None

    # -- wiring ------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._runner = runner
        model = _unwrap(runner.model)
        optim = runner.optim_wrapper
        if not hasattr(optim, 'update_params') or hasattr(optim, '_mmattn_unguarded'):
            return
        parse = model.parse_losses

        def parse_losses(losses):
            # Remember the terms of this step (as tensors) to name the bad ones.
            self._terms = {k: v for k, v in losses.items()}
            return parse(losses)

        update = optim.update_params

        def update_params(loss, *args, **kwargs):
            if self._finite(loss):
                return update(loss, *args, **kwargs)
            self._on_nonfinite(runner, optim)

        model.parse_losses = parse_losses
        optim._mmattn_unguarded = update
        optim.update_params = update_params
        if self.policy == 'skip':
            runner.message_hub.update_scalar('train/skipped_steps', self.skipped)

    @staticmethod
    def _finite(loss) -> bool:
        bad = 0 if torch.isfinite(loss.detach()).all() else 1
        return _all_ranks_max(bad) == 0

    def _bad_terms(self) -> str:
        bad = []
        for name, value in self._terms.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if (
                    isinstance(v, torch.Tensor)
                    and 'loss' in name
                    and not torch.isfinite(v.detach()).all()
                ):
                    shown = v.detach().float()
                    shown = shown.flatten()[~torch.isfinite(shown.flatten())][0].item()
                    bad.append(f'{name}={shown}')
                    break
        return ', '.join(bad) or 'the sum of the terms overflowed'

    def _on_nonfinite(self, runner, optim) -> None:
        step = runner.iter + 1
        terms = self._bad_terms()
        if self.policy == 'stop':
            raise NonFiniteLossError(
                f'non-finite loss at iteration {step}: {terms}; the weights were not updated and '
                f'the last checkpoint is the last good state. Lower the learning rate or enable '
                f'gradient clipping, then --resume; or skip such steps with --nan-policy skip'
            )
        self.skipped += 1
        optim.zero_grad()
        optim._inner_count += 1  # the step counts as taken for gradient accumulation
        runner.message_hub.update_scalar('train/skipped_steps', self.skipped)
        if self.skipped > self.max_skips:
            raise NonFiniteLossError(
                f'non-finite loss at iteration {step}: {terms}; {self.skipped} steps were '
                f'skipped, more than nan_max_skips={self.max_skips}: the run diverged. Lower '
                f'the learning rate or enable gradient clipping, then --resume'
            )
        runner.logger.warning(
            f'non-finite loss at iteration {step}: {terms}; step skipped '
            f'(skipped {self.skipped} of at most {self.max_skips})'
        )

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.policy == 'skip':
            runner.message_hub.update_scalar('train/skipped_steps', self.skipped)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['nonfinite_skipped'] = self.skipped

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, '_resume', False):
            self.skipped = int(checkpoint.get('meta', {}).get('nonfinite_skipped', 0))


@HOOKS.register_module()
class WriteErrorHook(Hook):
    """Turn a failed write of the run's log or scalar files into one error naming the file.

    Python's logging prints a traceback for every record a full disk refuses and carries on;
    MMEngine's scalar writer raises an ``OSError`` without a file name. With this hook both
    raise ``OSError(errno, strerror, path)``, which ``tools/train.py`` reports as one
    ``error:`` line (checkpoints are named by :func:`~mmattn.utils.atomic.atomic_write`).
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        for handler in runner.logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handleError = self._raising(handler.handleError, handler.baseFilename)
        backends = getattr(runner.visualizer, '_vis_backends', {}) or {}
        for backend in backends.values():
            dump = getattr(backend, '_dump', None)
            if dump is not None:
                backend._dump = self._named_dump(dump)

    @staticmethod
    def _raising(default, path):
        def handle_error(record):
            err = sys.exc_info()[1]
            if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
                raise OSError(err.errno, err.strerror, path) from err
            return default(record)

        return handle_error

    @staticmethod
    def _named_dump(dump):
        def named(value_dict, file_path, file_format):
            try:
                return dump(value_dict, file_path, file_format)
            except OSError as err:
                if err.filename:
                    raise
                raise OSError(err.errno, err.strerror, file_path) from err

        return named


def enable_fault_handling(
    cfg, nan_policy: Optional[str] = None, nan_max_skips: Optional[int] = None
) -> None:
    """Add the three fault hooks to ``cfg.custom_hooks`` (those already there are kept).

    The non-finite policy comes from the arguments (the command line), else from the config's
    top-level ``nan_policy`` / ``nan_max_skips``, else ``'stop'`` / 10.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    types = {str(h.get('type', '')).split('.')[-1] for h in hooks if isinstance(h, dict)}
    if 'PreemptionHook' not in types:
        hooks.append(dict(type='mmattn.PreemptionHook'))
    policy = nan_policy or cfg.get('nan_policy') or 'stop'
    max_skips = nan_max_skips if nan_max_skips is not None else cfg.get('nan_max_skips', 10)
    if policy not in NonFiniteLossHook.POLICIES:
        raise UserInputError(
            f"nan_policy '{policy}' is not one of "
            f'{list(NonFiniteLossHook.POLICIES)}; set it in the config or '
            f'with --nan-policy'
        )
    found = [
        h
        for h in hooks
        if isinstance(h, dict) and str(h.get('type', '')).split('.')[-1] == 'NonFiniteLossHook'
    ]
    if found:
        if nan_policy is not None:
            found[0]['policy'] = nan_policy
        if nan_max_skips is not None:
            found[0]['max_skips'] = nan_max_skips
    else:
        hooks.append(dict(type='mmattn.NonFiniteLossHook', policy=policy, max_skips=int(max_skips)))
    if 'WriteErrorHook' not in types:
        hooks.append(dict(type='mmattn.WriteErrorHook'))
    cfg.custom_hooks = hooks
