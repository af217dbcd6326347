"""Write the seeded corpus of damaged datasets and check what tools/train.py does with each.

    python tools/misc/fuzz_datasets.py [--seed 0] [--workspace DIR] [--out docs/reliability.md]
                                       [--subprocess N]

Every variant (:mod:`mmattn.datasets.fuzz`) goes through ``tools/train.py``'s pre-flight
checks in this process and, where they pass, every sample of every split is loaded through
the real dataset and pipeline. ``--subprocess N`` also runs ``tools/train.py`` (2 iterations)
and ``tools/test.py`` as subprocesses on N variants spread over the outcomes. The table
(variant, promised outcome, outcome, message) replaces the corpus section of ``--out``.
Exits 1 if any variant's outcome differs from the promised one.
"""

import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BEGIN, END = '<!-- fuzz-corpus:begin -->', '<!-- fuzz-corpus:end -->'


def run_tools(variant, repo, folder, timeout=900):
    """(outcome, message) of tools/train.py (2 iterations), then tools/test.py, in
    subprocesses: 'a'/'b' when both exit 0 ('b' if a note counts skipped samples), 'c' when
    train.py exits 2 with one ``error:`` line before training, else 'failure'."""
    from mmattn.datasets.fuzz import write_config

    cfg = write_config(variant, repo, folder)
    work = osp.join(folder, variant.name.replace('/', '__'))
    env = dict(os.environ, PYTHONUNBUFFERED='1')

    def tool(*args):
        return subprocess.run(
            [sys.executable, osp.join(repo, 'tools', args[0]), *args[1:]],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    train = tool('train.py', cfg, '--work-dir', work)
    errors = [line for line in train.stderr.splitlines() if line.startswith('error:')]
    if train.returncode == 2:
        trained = re.search(r'Iter\(train\)', train.stdout)
        ok = len(errors) == 1 and 'Traceback' not in train.stderr and not trained
        return (
            ('c', errors[0][len('error: ') :])
            if ok
            else ('failure', f'exit 2 but {len(errors)} error lines / traceback / trained')
        )
    if train.returncode != 0:
        return 'failure', f'train.py exit {train.returncode}: {train.stderr[-300:]!r}'
    test = tool('test.py', cfg, osp.join(work, 'iter_2.pth'), '--work-dir', work + '_test')
    if test.returncode != 0:
        return 'failure', f'test.py exit {test.returncode}: {test.stderr[-300:]!r}'
    notes = [
        line[len('note: ') :]
        for line in train.stderr.splitlines()
        if line.startswith('note: ') and 'skipped' in line
    ]
    return ('b', notes[0]) if notes else ('a', 'train.py (2 iterations) and test.py ran')


def representative(results, n):
    """``n`` variants spread over datasets and outcomes (deterministic)."""
    picked, seen = [], set()
    for r in results:
        key = (r.variant.dataset, r.outcome)
        if key not in seen:
            seen.add(key)
            picked.append(r.variant)
    return picked[:n]


def table(results, sub, workspace='', seed=0) -> str:
    from mmattn.datasets.fuzz import OUTCOMES, summary

    def short(msg):  # paths relative to the corpus folder
        return msg.replace(osp.join(workspace, 'variants') + '/', '') if workspace else msg

    lines = [
        BEGIN,
        '',
        f'`python tools/misc/fuzz_datasets.py --seed {seed}`: {len(results)} '
        f'variants; messages shortened to 220 characters, paths relative to the corpus.',
        '',
        '| dataset | '
        + ' | '.join(f'({k}) {v}' for k, v in OUTCOMES.items())
        + ' | other | total |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    counts = summary(results)
    for ds, row in counts.items():
        other = sum(v for k, v in row.items() if k not in OUTCOMES)
        lines.append(
            f'| {ds} | '
            + ' | '.join(str(row.get(k, 0)) for k in OUTCOMES)
            + f' | {other} | {sum(row.values())} |'
        )
    total = {k: sum(r.get(k, 0) for r in counts.values()) for k in OUTCOMES}
    lines.append(
        '| **all** | '
        + ' | '.join(str(total[k]) for k in OUTCOMES)
        + f' | {len(results) - sum(total.values())} | {len(results)} |'
    )
    lines += ['', '| variant | promised | outcome | message |', '|---|:-:|:-:|---|']
    for r in results:
        msg = short(r.message).replace('|', '\\|')
        if len(msg) > 220:
            msg = msg[:217] + '...'
        mark = r.outcome if r.outcome == r.variant.expect else f'**{r.outcome}**'
        lines.append(f'| `{r.variant.name}` | {r.variant.expect} | {mark} | {msg} |')
    if sub:
        lines += [
            '',
            'As subprocesses (`tools/train.py`, 2 iterations, then `tools/test.py`):',
            '',
            '| variant | in-process | subprocess | message |',
            '|---|:-:|:-:|---|',
        ]
        for name, inproc, (outcome, msg) in sub:
            lines.append(f'| `{name}` | {inproc} | {outcome} | {short(msg)[:200]} |')
    lines += ['', END]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workspace', help='where the corpus is written (default: a temp dir)')
    parser.add_argument('--out', help='markdown file whose corpus section is replaced')
    parser.add_argument(
        '--subprocess',
        type=int,
        default=0,
        metavar='N',
        help='also run tools/train.py + test.py on N representative variants',
    )
    args = parser.parse_args(argv)
    from mmattn.datasets.fuzz import run_corpus

    workspace = args.workspace or tempfile.mkdtemp(prefix='mmattn_fuzz_')
    start = time.time()
    results = run_corpus(workspace, REPO, seed=args.seed)
    in_process = time.time() - start
    sub = []
    if args.subprocess:
        folder = osp.join(workspace, 'runs')
        os.makedirs(folder, exist_ok=True)
        by_name = {r.variant.name: r for r in results}
        for v in representative(results, args.subprocess):
            sub.append((v.name, by_name[v.name].outcome, run_tools(v, REPO, folder)))
    wrong = [r for r in results if r.outcome != r.variant.expect]
    wrong += [s for s in sub if s[1] != s[2][0]]
    text = table(results, sub, workspace, args.seed)
    print(text)
    print(
        f'{len(results)} variants in {in_process:.0f} s in-process'
        f'{f", {len(sub)} as subprocesses" if sub else ""}; '
        f'{len(wrong)} differ from the promised outcome',
        file=sys.stderr,
    )
    if args.out:
        with open(args.out, encoding='utf-8') as f:
            doc = f.read()
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
        else:
            doc = doc.rstrip('\n') + '\n\n' + text + '\n'
        from mmattn.utils.atomic import atomic_write

        atomic_write(args.out, doc)
    return 1 if wrong else 0


if __name__ == '__main__':
    sys.exit(main())
