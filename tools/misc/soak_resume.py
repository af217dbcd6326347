"""Kill-and-resume soak: SIGKILL a real training run again and again, resume it each time.

    python tools/misc/soak_resume.py [--iters 200] [--kills 25] [--seed 0]
                                     [--workspace DIR] [--out docs/reliability.md]

A Semantic FPN (narrow ResNet-18) trains on the bundled shapes data, deterministically, with a
checkpoint every ``--ckpt-interval`` and a validation every ``--val-interval`` iterations. A
seeded plan kills it ``--kills`` times with SIGKILL, each time at one of three kinds of moment:
at a random time while it trains, inside a checkpoint write (the temporary file half written),
or inside a validation. After every kill, no file under a final checkpoint name may be
truncated; the run is then resumed with ``--resume``. The last resume runs to the end. Its
final weights and optimizer state must equal, bit for bit, those of an uninterrupted run, and
its final validation metrics must be equal too. The result replaces the soak section of
``--out``. Exits 1 if anything differs.
"""

import argparse
import glob
import json
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
BEGIN, END = '<!-- soak:begin -->', '<!-- soak:end -->'

CONFIG = """
_base_ = {base!r}
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_iters={iters}, val_interval={val_interval})
train_dataloader = dict(batch_size=2)
val_dataloader = dict(dataset=dict(indices={val_images}))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval={ckpt_interval}, max_keep_ckpts=2),
                     logger=dict(interval=1))
"""

# Kills the run from inside at a chosen moment: SOAK_KILL=ckpt-write (the N-th checkpoint
# write of this process, after half of its temporary file reached the disk) or validation (the
# N-th validation sample of this process).
DRIVER = r"""
import os, runpy, signal, sys
kind, at = os.environ.get('SOAK_KILL', ''), int(os.environ.get('SOAK_AT', '1'))
seen = [0]

def die():
    sys.stdout.flush(); sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if kind == 'ckpt-write':
    real_fsync = os.fsync
    def fsync(fd):
        try:
            path = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            path = ''
        if path.endswith('.part') and os.fstat(fd).st_size > 4096:
            seen[0] += 1
            if seen[0] == at:
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
                die()
        return real_fsync(fd)
    os.fsync = fsync
elif kind == 'validation':
    from mmengine.runner import loops
    real = loops.ValLoop.run_iter
    def run_iter(self, idx, data_batch):
        seen[0] += 1
        if seen[0] == at:
            die()
        return real(self, idx, data_batch)
    loops.ValLoop.run_iter = run_iter
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""

ITER_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/')
RESUMED = re.compile(r'resumed epoch: \d+, iter: (\d+)')


def plan_kills(n: int, seed: int):
    """``n`` kills: (kind, parameter); at least one of each kind, the rest mostly random."""
    rng = random.Random(seed)
    kinds = ['ckpt-write', 'validation', 'random'] + rng.choices(
        ['random', 'ckpt-write', 'validation'], weights=[3, 1, 1], k=max(0, n - 3)
    )
    rng.shuffle(kinds)
    plan = []
    for kind in kinds[:n]:
        if kind == 'random':
            plan.append((kind, round(rng.uniform(0.2, 3.0), 2)))  # seconds after training starts
        elif kind == 'ckpt-write':
            plan.append((kind, 2))  # the 2nd save of the run: the 1st one makes progress
        else:
            plan.append((kind, rng.randint(1, 3)))  # the 1st-3rd validation sample
    return plan


def run_train(driver, cfg, work, resume, kill=None, timeout=1800):
    """One tools/train.py run; returns (returncode, output, killed_at_iter)."""
    cmd = [sys.executable, driver, osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir', work]
    if resume:
        cmd.append('--resume')
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.pop('SOAK_KILL', None)
    if kill and kill[0] != 'random':
        env.update(SOAK_KILL=kill[0], SOAK_AT=str(kill[1]))
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines, training, last = [], threading.Event(), [0]

    def read():
        for line in proc.stdout:
            lines.append(line)
            match = ITER_LINE.search(line)
            if match:
                last[0] = int(match.group(1))
                training.set()
        training.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill and kill[0] == 'random' and training.wait(timeout):
        try:
            proc.wait(timeout=kill[1])
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=timeout)
    reader.join(timeout=60)
    return proc.returncode, ''.join(lines), last[0]


def incomplete_checkpoints(work):
    """Final-named checkpoint files that are not complete, and a dangling pointer."""
    from mmattn.utils.checkpoint import is_complete_checkpoint

    bad = [p for p in glob.glob(osp.join(work, '*.pth')) if not is_complete_checkpoint(p)]
    pointer = osp.join(work, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and not is_complete_checkpoint(named):
            bad.append(f'last_checkpoint -> {named}')
    return bad


def final_metrics(work, step):
    """The validation metrics logged at ``step`` by any run in ``work``."""
    for path in sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                metrics = {k: v for k, v in rec.items() if 'IoU' in k or 'Acc' in k}
                if rec.get('step') == step and metrics:
                    return metrics
    return None


def same_state(a_path, b_path):
    import torch

    from mmattn.utils.checkpoint import safe_load

    a = safe_load(a_path)
    b = safe_load(b_path)
    sa, sb = a['state_dict'], b['state_dict']
    if sa.keys() != sb.keys():
        return False, 'different tensor names'
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    oa, ob = a['optimizer']['state'], b['optimizer']['state']
    differ += [
        f'optimizer state {i}'
        for i in oa
        if any(
            not torch.equal(oa[i][k], ob[i][k]) for k in oa[i] if isinstance(oa[i][k], torch.Tensor)
        )
    ]
    return not differ, (
        f'{len(differ)} differ, e.g. {differ[:3]}'
        if differ
        else f'all {len(sa)} weights and {len(oa)} optimizer states equal'
    )


def soak(
    workspace,
    iters=200,
    kills=25,
    seed=0,
    ckpt_interval=5,
    val_interval=25,
    val_images=8,
    log=print,
):
    """Run the soak; returns a result dict (see the module docstring)."""
    import shutil

    os.makedirs(workspace, exist_ok=True)
    for old in ('uninterrupted', 'killed'):  # a soak always starts from nothing
        shutil.rmtree(osp.join(workspace, old), ignore_errors=True)
    from mmattn.datasets import make_shapes_ade

    make_shapes_ade(osp.join(REPO, 'data', 'shapes_ade'))
    cfg = osp.join(workspace, 'soak.py')
    with open(cfg, 'w') as f:
        f.write(
            CONFIG.format(
                base=osp.join(REPO, 'configs/shapes/fpn_r18_shapes.py'),
                iters=iters,
                val_interval=val_interval,
                val_images=val_images,
                ckpt_interval=ckpt_interval,
            )
        )
    driver = osp.join(workspace, 'driver.py')
    with open(driver, 'w') as f:
        f.write(DRIVER)
    final = f'iter_{iters}.pth'

    start = time.time()
    ref = osp.join(workspace, 'uninterrupted')
    rc, out, _ = run_train(driver, cfg, ref, resume=False)
    if rc != 0:
        raise RuntimeError(f'the uninterrupted run failed ({rc}):\n{out[-3000:]}')
    ref_time = time.time() - start

    work = osp.join(workspace, 'killed')
    start = time.time()
    done, events, plan, runs = 0, [], plan_kills(kills, seed), 0
    for kind, param in plan:
        rc, out, last = run_train(driver, cfg, work, resume=runs > 0, kill=(kind, param))
        runs += 1
        resumed = RESUMED.search(out)
        event = dict(
            kind=kind,
            param=param,
            rc=rc,
            resumed_from=int(resumed.group(1)) if resumed else 0,
            last_logged_iter=last,
        )
        bad = incomplete_checkpoints(work)
        event['incomplete'] = bad
        events.append(event)
        log(
            f'kill {len(events)}/{len(plan)}: {kind} {param} -> rc {rc}, resumed from '
            f'{event["resumed_from"]}, last logged iteration {last}'
            + (f', INCOMPLETE: {bad}' if bad else '')
        )
        if rc == -signal.SIGKILL:
            done += 1
        elif rc == 0:
            break  # finished before the kill came: no work left to interrupt
        else:
            raise RuntimeError(f'run exited {rc}:\n{out[-3000:]}')
    rc, out, _ = run_train(driver, cfg, work, resume=True)
    runs += 1
    if rc != 0:
        raise RuntimeError(f'the final resume failed ({rc}):\n{out[-3000:]}')
    soak_time = time.time() - start
    equal, detail = same_state(osp.join(ref, final), osp.join(work, final))
    ref_metrics, got_metrics = final_metrics(ref, iters), final_metrics(work, iters)
    return dict(
        iters=iters,
        kills=done,
        planned=len(plan),
        runs=runs,
        seed=seed,
        kinds={
            k: sum(1 for e in events if e['kind'] == k and e['rc'] == -signal.SIGKILL)
            for k in ('random', 'ckpt-write', 'validation')
        },
        incomplete_seen=sum(len(e['incomplete']) for e in events),
        weights_equal=equal,
        weights_detail=detail,
        metrics_equal=ref_metrics is not None and ref_metrics == got_metrics,
        metrics=got_metrics,
        ref_metrics=ref_metrics,
        ref_time=ref_time,
        soak_time=soak_time,
        events=events,
    )


def report(res) -> str:
    lines = [
        BEGIN,
        '',
        f'`python tools/misc/soak_resume.py --iters {res["iters"]} --kills '
        f'{res["planned"]} --seed {res["seed"]}` ({time.strftime("%Y-%m-%d")}, CPU):',
        '',
        '| iterations | SIGKILLs (random / in a checkpoint write / in validation) | runs | '
        'truncated checkpoints seen | final weights + optimizer | final metrics | '
        'time (uninterrupted / soak) |',
        '|---:|---|---:|---:|---|---|---|',
        f'| {res["iters"]} | {res["kills"]} ({res["kinds"]["random"]} / '
        f'{res["kinds"]["ckpt-write"]} / {res["kinds"]["validation"]}) | {res["runs"]} | '
        f'{res["incomplete_seen"]} | {"bit-identical" if res["weights_equal"] else "DIFFER"}'
        f' ({res["weights_detail"]}) | {"equal" if res["metrics_equal"] else "DIFFER"} '
        f'({", ".join(f"{k} {v}" for k, v in (res["metrics"] or {}).items())}) | '
        f'{res["ref_time"]:.0f} s / {res["soak_time"]:.0f} s |',
        '',
        END,
    ]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--kills', type=int, default=25)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--ckpt-interval', type=int, default=5)
    parser.add_argument('--val-interval', type=int, default=25)
    parser.add_argument('--workspace', help='default: a temporary folder')
    parser.add_argument('--out', help='markdown file whose soak section is replaced')
    args = parser.parse_args(argv)
    res = soak(
        args.workspace or tempfile.mkdtemp(prefix='mmattn_soak_'),
        args.iters,
        args.kills,
        args.seed,
        args.ckpt_interval,
        args.val_interval,
        log=lambda m: print(m, file=sys.stderr),
    )
    text = report(res)
    print(text)
    if args.out:
        with open(args.out, encoding='utf-8') as f:
            doc = f.read()
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
        else:
            doc = doc.rstrip('\n') + '\n\n' + text + '\n'
        from mmattn.utils.atomic import atomic_write

        atomic_write(args.out, doc)
    ok = (
        res['weights_equal']
        and res['metrics_equal']
        and not res['incomplete_seen']
        and res['kills'] >= args.kills
    )
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
