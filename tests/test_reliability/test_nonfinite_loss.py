"""A non-finite loss stops the run before it reaches the weights, or is skipped and counted.

In-process: MMEngine's own Runner trains a two-weight model whose second loss term is NaN for
chosen samples, in fp32 and under CPU bf16 autocast; a skipped step must leave the weights as
if the sample had not been there (plain SGD), and a stop must leave the weights of the step
before. fp16 AMP: with MMEngine's ``AmpOptimWrapper`` and a real (CPU) ``GradScaler``, a
gradient overflow stays the scaler's business and a NaN loss is ours; neither is counted twice.
Then ``tools/train.py`` as a user runs it, with a learning-rate spike that blows the loss up.
"""

import glob
import os.path as osp
import re
import uuid
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader

from mmattn.engine.faults import EXIT_NONFINITE_LOSS, NonFiniteLossError, NonFiniteLossHook
from mmattn.utils.checkpoint import safe_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class TwoTermModel(BaseModel):
    """``loss_a`` is always finite; ``loss_b`` is multiplied by the sample's factor (NaN for
    a bad sample)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.5, -0.25]]))
            self.fc.bias.fill_(0.1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = torch.stack(inputs)
        out = self.fc(x).float()
        factor = torch.tensor(data_samples, dtype=torch.float32)
        return dict(loss_a=(out - 1).pow(2).mean(), loss_b=(out.abs() * factor[:, None]).mean())


def samples(bad=()):
    return [
        dict(
            inputs=torch.tensor([float(i % 3), 1.0 - i % 2]),
            data_samples=float('nan') if i in bad else 0.5,
        )
        for i in range(8)
    ]


def make_runner(tmp_path, data, hook, optim_wrapper=None):
    loader = DataLoader(data, batch_size=1, shuffle=False, collate_fn=pseudo_collate)
    return Runner(
        model=TwoTermModel(),
        work_dir=str(tmp_path / uuid.uuid4().hex[:8]),
        experiment_name=f'nonfinite_{uuid.uuid4().hex[:8]}',
        train_dataloader=loader,
        optim_wrapper=optim_wrapper or dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=len(data)),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook] if hook else [],
        default_scope='mmengine',
    )


def weights(runner):
    return torch.cat([p.detach().flatten() for p in runner.model.parameters()])


@pytest.mark.parametrize('amp', [False, True], ids=['fp32', 'cpu-bf16'])
def test_skip_equals_training_without_the_bad_samples(tmp_path, amp, capsys):
    wrapper = (
        dict(type='mmattn.CPUAmpOptimWrapper', dtype='bfloat16', optimizer=dict(type='SGD', lr=0.1))
        if amp
        else None
    )
    if amp:
        import mmattn.engine  # noqa: F401  (registers CPUAmpOptimWrapper)
    bad = (2, 5)
    hook = NonFiniteLossHook(policy='skip', max_skips=2)
    skipping = make_runner(tmp_path, samples(bad), hook, wrapper)
    skipping.train()
    clean = make_runner(
        tmp_path, [s for i, s in enumerate(samples(bad)) if i not in bad], None, wrapper
    )
    clean.train()
    assert hook.skipped == 2
    assert torch.isfinite(weights(skipping)).all()
    assert torch.equal(weights(skipping), weights(clean))
    out = capsys.readouterr().out
    assert (
        'non-finite loss at iteration 3: loss_b=nan; step skipped (skipped 1 of at most 2)' in out
    )
    assert 'skipped 2 of at most 2' in out and 'skipped_steps: 2' in out


def test_stop_names_iteration_and_terms_and_keeps_weights(tmp_path):
    runner = make_runner(tmp_path, samples(bad=(3,)), NonFiniteLossHook())
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    msg = str(err.value)
    assert msg.startswith('non-finite loss at iteration 4: loss_b=nan;'), msg
    assert 'loss_a' not in msg and '\n' not in msg
    clean = make_runner(tmp_path, samples()[:3], None)
    clean.train()
    assert torch.equal(weights(runner), weights(clean))  # the bad step never touched them


def test_skip_budget_is_bounded(tmp_path):
    runner = make_runner(tmp_path, samples(bad=(1, 2, 6)), NonFiniteLossHook('skip', 2))
    with pytest.raises(
        NonFiniteLossError,
        match=r'iteration 7: loss_b=nan; 3 steps were '
        r'skipped, more than nan_max_skips=2',
    ):
        runner.train()
    with pytest.raises(ValueError, match='nan_policy'):
        NonFiniteLossHook(policy='ignore')


def test_fp16_scaler_skips_are_not_counted_and_nan_loss_leaves_the_scaler_alone(monkeypatch):
    """CUDA fp16 AMP, on CPU: MMEngine's AmpOptimWrapper with a real GradScaler (CPU device).

    A finite loss whose scaled gradients overflow: the scaler skips the step and halves its
    scale; the hook counts nothing. A NaN loss: the hook skips it before the scaler sees it;
    the scale stays. Either way the weights are unchanged."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.optim.optimizer import amp_optimizer_wrapper

    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    model = TwoTermModel()
    optim = amp_optimizer_wrapper.AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)
    )
    optim.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.0**16)
    runner = SimpleNamespace(
        model=model,
        optim_wrapper=optim,
        iter=0,
        logger=MMLogger.get_instance(f'amp_{uuid.uuid4().hex[:6]}'),
        message_hub=MessageHub.get_instance(f'amp_{uuid.uuid4().hex[:6]}'),
    )
    hook = NonFiniteLossHook('skip', max_skips=5)
    hook.before_train(runner)
    before = weights(SimpleNamespace(model=model)).clone()

    # a finite loss (~2.5e33) whose gradients (~1e34) overflow fp32 once scaled by 2**16
    loss = model.parse_losses(model([torch.tensor([1e17, 0.0])], [0.5]))[0]
    assert torch.isfinite(loss)
    optim.update_params(loss)
    assert optim.loss_scaler.get_scale() == 2.0**15  # the scaler skipped and backed off
    assert hook.skipped == 0

    loss = model.parse_losses(model([torch.tensor([1.0, 1.0])], [float('nan')]))[0]
    optim.update_params(loss)
    assert hook.skipped == 1
    assert optim.loss_scaler.get_scale() == 2.0**15  # untouched by the NaN loss
    assert torch.equal(weights(SimpleNamespace(model=model)), before)

    optim.update_params(model.parse_losses(model([torch.tensor([1.0, 1.0])], [0.5]))[0])
    assert not torch.equal(weights(SimpleNamespace(model=model)), before)  # a normal step


# --- tools/train.py, as a user runs it ----------------------------------------------------------

SPIKE = """
_base_ = {base!r}
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_iters=10, val_interval=1000)
train_dataloader = dict(batch_size=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
# From iteration 5 the learning rate is 1e12 times too high: the loss blows up.
param_scheduler = [dict(type='MultiStepLR', milestones=[5], gamma=1e12, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=4, max_keep_ckpts=2), logger=dict(interval=1))
"""


def test_train_py_stops_on_blow_up_and_resume_reaches_the_same_point(shapes_data, tmp_path, tool):
    cfg = tmp_path / 'spike.py'
    cfg.write_text(SPIKE.format(base=osp.join(REPO, 'configs/shapes/fpn_r18_shapes.py')))
    work = tmp_path / 'work'
    proc = tool('train.py', cfg, '--work-dir', work, check=False)
    assert proc.returncode == EXIT_NONFINITE_LOSS, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    match = re.match(
        r'error: non-finite loss at iteration (\d+): (decode\.)?loss_ce=(nan|inf)', errors[0]
    )
    assert match, errors[0]
    stop = int(match.group(1))
    assert stop > 5
    # The last good checkpoint stays: complete, finite, named by the pointer; nothing later.
    saved = sorted(glob.glob(str(work / 'iter_*.pth')))
    assert [osp.basename(p) for p in saved] == ['iter_4.pth'], saved
    with open(work / 'last_checkpoint') as f:
        assert f.read().strip() == saved[0]
    state = safe_load(saved[0])['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())

    # Resuming works (from iteration 4) and, the run being deterministic, meets the same
    # blow-up; skipping is bounded and counted.
    proc = tool(
        'train.py',
        cfg,
        '--work-dir',
        work,
        '--resume',
        '--nan-policy',
        'skip',
        '--nan-max-skips',
        '2',
        check=False,
    )
    assert 'resumed epoch: 0, iter: 4' in proc.stdout, proc.stdout[-3000:]
    assert f'non-finite loss at iteration {stop}: ' in proc.stdout
    assert 'step skipped (skipped 1 of at most 2)' in proc.stdout, proc.stdout[-3000:]
    assert proc.returncode == EXIT_NONFINITE_LOSS, proc.stderr[-3000:]
    assert 'more than nan_max_skips=2' in proc.stderr.splitlines()[-1]


def test_policy_from_config_and_command_line():
    """``nan_policy`` / ``nan_max_skips`` in the config, the command line overriding them, and
    the hooks reachable by type name from any scope (MMDetection's own tools)."""
    from mmengine.config import Config
    from mmengine.registry import HOOKS

    from mmattn.engine.faults import PreemptionHook, WriteErrorHook, enable_fault_handling
    from mmattn.utils.cli import UserInputError

    def hooks(cfg):
        return {h['type'].split('.')[-1]: h for h in cfg.custom_hooks}

    cfg = Config(dict(nan_policy='skip', nan_max_skips=3))
    enable_fault_handling(cfg)
    assert hooks(cfg)['NonFiniteLossHook'] == dict(
        type='mmattn.NonFiniteLossHook', policy='skip', max_skips=3
    )
    assert {'PreemptionHook', 'WriteErrorHook'} <= set(hooks(cfg))
    cfg = Config(dict(nan_policy='skip', custom_hooks=[dict(type='EMAHook')]))
    enable_fault_handling(cfg, nan_policy='stop', nan_max_skips=1)
    assert hooks(cfg)['NonFiniteLossHook']['policy'] == 'stop' and 'EMAHook' in hooks(cfg)
    enable_fault_handling(cfg, nan_policy='skip')  # twice: the hooks are not duplicated
    assert len(cfg.custom_hooks) == 4 and hooks(cfg)['NonFiniteLossHook']['policy'] == 'skip'
    with pytest.raises(UserInputError, match="nan_policy 'ignore' is not one of"):
        enable_fault_handling(Config(dict(nan_policy='ignore')))

    built = [
        HOOKS.build(dict(type=f'mmattn.{name}'))
        for name in ('PreemptionHook', 'NonFiniteLossHook', 'WriteErrorHook')
    ]
    assert isinstance(built[0], PreemptionHook) and isinstance(built[2], WriteErrorHook)
    built[0]._restore()  # give the signals back to pytest
