"""Distributed equals single: ``tools/dist_train.sh`` with 2 gloo processes on CPU.

For one backbone of every family, 2 processes x batch 1 and 1 process x batch 2 see the same
images in the same order (no shuffling, no random augmentation, no dropout or drop-path, norm
statistics frozen in the backbone stems and GroupNorm in the head, every pixel labelled so the
per-process mean losses average to the global mean). After each of two SGD iterations the
parameters must agree within float tolerance. The second iteration also proves that no family
needs ``find_unused_parameters=True``: DDP (which ``tools/train.py`` builds with it False)
raises at the next forward when a parameter got no gradient.
"""

import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from reliability_families import REPO, build_model, config_text, landed

#: one backbone per family (the Swin variants add the window skeleton)
DDP_FAMILIES = ['agent-pvt', 'flatten-swin', 'biformer', 'shunted', 'ea-pvt']

EXTRA = """
randomness = dict(seed=0)
_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size={batch},
    sampler=dict(type='InfiniteSampler', shuffle=False),
    dataset=dict(reduce_zero_label=False, pipeline=_pipeline, metainfo=dict(
        classes=('other', 'background', 'circle', 'rectangle', 'triangle'),
        palette=[(0, 0, 0), (120, 120, 120), (220, 20, 60), (0, 128, 255), (60, 180, 75)])))
train_cfg = dict(max_iters=2, val_interval=1000)
val_cfg = None
val_dataloader = None
val_evaluator = None
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.05, momentum=0.))
param_scheduler = []
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
"""

BACKBONE_EXTRA = ', drop_path_rate=0., norm_eval=True'
# (inside model.decode_head=dict(...); the data preprocessor follows it in model=dict(...))
MODEL_EXTRA = (
    ", num_classes=5, dropout_ratio=0., norm_cfg=dict(type='GN', num_groups=8, "
    'requires_grad=True)), data_preprocessor=dict(size=(64, 64)'
)


#: torchrun's rendezvous failing to bind or reach its port: another process took the port
#: between our probe and its bind. Only this is retried, never a failure of the training itself.
PORT_RACE = re.compile(
    r'EADDRINUSE|[Aa]ddress already in use|failed to listen|'
    r'Connection refused|Connection reset by peer'
)


def _run(cmd, env, attempts=1, free_port=None):
    for attempt in range(attempts):
        if free_port is not None:  # a fresh rendezvous port for every attempt
            env = dict(env, PORT=str(free_port()))
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
        if proc.returncode == 0 or not PORT_RACE.search(proc.stderr + proc.stdout):
            break
    assert proc.returncode == 0, f'{" ".join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}'
    return proc


def _params(path):
    from mmattn.utils.checkpoint import safe_load

    return safe_load(path)['state_dict']


def _save_init(family, tmp_path, path):
    from mmattn.utils.checkpoint import save_atomic

    model = build_model(family, tmp_path, EXTRA.format(batch=1), BACKBONE_EXTRA, MODEL_EXTRA)
    save_atomic({'state_dict': model.state_dict()}, path)


@pytest.mark.parametrize('family', DDP_FAMILIES)
def test_dist_train_equals_single(family, shapes_data, tmp_path, free_port):
    assert family in landed()
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    # Both runs start from the same weights (load_from), whatever RNG draws each made before.
    init = str(tmp_path / 'init.pth')
    _save_init(family, tmp_path, init)
    work = {}
    for name, batch in (('single', 2), ('ddp', 1)):
        cfg = tmp_path / f'{name}.py'
        cfg.write_text(
            config_text(
                family,
                extra=EXTRA.format(batch=batch) + f'load_from = {init!r}\n',
                backbone_extra=BACKBONE_EXTRA,
                model_extra=MODEL_EXTRA,
            )
        )
        work[name] = str(tmp_path / name)
        if name == 'single':
            _run(
                [
                    sys.executable,
                    osp.join(REPO, 'tools', 'train.py'),
                    str(cfg),
                    '--work-dir',
                    work[name],
                ],
                env,
            )
        else:
            _run(
                [
                    'bash',
                    osp.join(REPO, 'tools', 'dist_train.sh'),
                    str(cfg),
                    '2',
                    '--work-dir',
                    work[name],
                ],
                env,
                attempts=3,
                free_port=free_port,
            )

    # The two steps really moved the weights (the comparison is not vacuous).
    first = _params(osp.join(work['single'], 'iter_1.pth'))
    second = _params(osp.join(work['single'], 'iter_2.pth'))
    moved = max(
        (second[k].float() - first[k].float()).abs().max().item()
        for k in first
        if first[k].is_floating_point()
    )
    assert moved > 1e-4
    report = []
    for it in (1, 2):
        single = _params(osp.join(work['single'], f'iter_{it}.pth'))
        ddp = _params(osp.join(work['ddp'], f'iter_{it}.pth'))
        assert single.keys() == ddp.keys()
        diff = max((single[k].float() - ddp[k].float()).abs().max().item() for k in single)
        report.append(diff)
        for k in single:
            torch.testing.assert_close(
                ddp[k],
                single[k],
                rtol=1e-4,
                atol=2e-5,
                msg=lambda m, k=k: f'{family} iter {it} {k}: {m}',
            )
    print(
        f'{family}: max |DDP - single| after iter 1, 2 = {report[0]:.3g}, {report[1]:.3g} '
        f'(largest update {moved:.3g})'
    )
