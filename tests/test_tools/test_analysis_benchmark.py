"""Benchmark helpers and tool: timing summary, CPU peak memory, the CLI on a small config."""
import json

import torch

from mmattn.analysis.benchmark import peak_memory, summarize, time_runs


def test_summarize_median_and_spread():
    s = summarize([3.0, 1.0, 2.0, 10.0, 2.5])
    assert s['median'] == 2.5 and s['min'] == 1.0 and s['max'] == 10.0 and s['runs'] == 5
    assert s['q1'] <= s['median'] <= s['q3']


def test_time_runs_counts_and_warmup():
    calls = []
    times = time_runs(lambda: calls.append(1), repeat=4, warmup=3)
    assert len(times) == 4 and len(calls) == 7 and all(t >= 0 for t in times)


def test_process_clock_ignores_sleeping():
    import time
    wall = time_runs(lambda: time.sleep(0.05), repeat=1, warmup=0)
    cpu = time_runs(lambda: time.sleep(0.05), repeat=1, warmup=0, clock='process')
    assert wall[0] >= 0.05 > cpu[0]


def test_cpu_peak_memory_sees_temporaries():
    n = 1 << 20  # 4 MiB of fp32, alive together with a second buffer of the same size

    def fn():
        a = torch.ones(n)
        b = a * 2
        return float((a + b).sum())

    peak = peak_memory(fn)
    # a, b and a + b are alive at once: 3 buffers of 4 MiB (the allocator may add a little)
    assert 3 * 4 * n <= peak < 5 * 4 * n


def test_benchmark_tool(tool, tmp_path):
    out = tmp_path / 'bench.json'
    proc = tool('analysis_tools/benchmark.py', 'configs/shapes/fpn_r18_shapes.py', '--shape',
                '32', '48', '--repeat', '2', '--warmup', '1', '--json', out)
    assert 'img/s' in proc.stdout
    res = json.loads(out.read_text())
    assert res['time']['runs'] == 2 and res['fps_median'] > 0 and res['peak_mem_bytes'] > 0
    bb = tmp_path / 'bb.json'
    tool('analysis_tools/benchmark.py', 'configs/shapes/mask-rcnn_r18_fpn_shapes.py', '--shape',
         '64', '--repeat', '2', '--warmup', '0', '--backbone-only', '--mode', 'tensor',
         '--json', bb)
    assert json.loads(bb.read_text())['backbone_only'] is True
