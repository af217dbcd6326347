"""Benchmark helpers and tool: timing summary, CPU peak memory, the CLI on a small config."""

import json
import os.path as osp

import torch

from mmattn.analysis.benchmark import peak_memory, summarize, time_runs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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
    proc = tool(
        'analysis_tools/benchmark.py',
        'configs/shapes/fpn_r18_shapes.py',
        '--shape',
        '32',
        '48',
        '--repeat',
        '2',
        '--warmup',
        '1',
        '--json',
        out,
    )
    assert 'img/s' in proc.stdout
    res = json.loads(out.read_text())
    assert res['time']['runs'] == 2 and res['fps_median'] > 0 and res['peak_mem_bytes'] > 0
    bb = tmp_path / 'bb.json'
    tool(
        'analysis_tools/benchmark.py',
        'configs/shapes/mask-rcnn_r18_fpn_shapes.py',
        '--shape',
        '64',
        '--repeat',
        '2',
        '--warmup',
        '0',
        '--backbone-only',
        '--mode',
        'tensor',
        '--json',
        bb,
    )
    assert json.loads(bb.read_text())['backbone_only'] is True


def _tiny_backbone():
    """The narrow Shunted backbone of a bundled-data recipe (built as the tools build it)."""
    from mmengine.config import Config

    from mmattn.analysis.flops import build_model_from_cfg

    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(REPO, 'configs/shapes/fpn_shunted-nano_shapes.py'))
    return build_model_from_cfg(cfg, backbone_only=True)


def test_train_step_runner_backpropagates_every_parameter():
    from mmattn.analysis.benchmark import train_step_runner

    model = _tiny_backbone()
    run = train_step_runner(model, 'seg', (32, 48), batch_size=2, backbone_only=True)
    loss = run()
    assert model.training and torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_compare_alternates_and_reports_both_sides():
    from mmattn.analysis.benchmark import compare_callables

    order = []
    res = compare_callables(
        dict(a=lambda: order.append('a'), b=lambda: order.append('b')),
        batch_size=1,
        rounds=3,
        repeat=2,
        warmup=1,
        measure_memory=False,
    )
    # warm-up a, b; then rounds a a b b | b b a a | a a b b
    assert order == list('ab') + list('aabbbbaaaabb')
    assert set(res['sides']) == {'a', 'b'} and len(res['speedup_rounds']) == 3
    assert res['speedup'] == res['sides']['a']['best'] / res['sides']['b']['best']
    assert all(
        len(s['round_medians']) == 3 and s['time']['runs'] == 6 for s in res['sides'].values()
    )


class _TinyDetector(torch.nn.Module):
    """A conv backbone with a softmax-attention head, enough to exercise compilation cheaply
    (compiling a real backbone takes minutes on the shared 2-core CI machine)."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.GELU(), torch.nn.Conv2d(8, 8, 3, 2, 1)
        )

    def forward(self, x):
        feat = self.backbone(x).flatten(2).transpose(1, 2)  # (B, N, C)
        return torch.nn.functional.scaled_dot_product_attention(feat, feat, feat)


def test_compiled_copy_equals_eager_and_leaves_the_original_alone():
    from mmattn.analysis.benchmark import compiled_copy, max_abs_diff

    torch.manual_seed(0)
    model = _TinyDetector().eval()
    compiled = compiled_copy(model, backbone_only=False, dynamic=True)
    x = torch.randn(2, 3, 20, 28)
    with torch.no_grad():
        eager_out, comp_out = model(x), compiled(x)
    diff = max_abs_diff(eager_out, comp_out)
    assert diff is not None and diff < 1e-5
    # compiled in place on the copy: same state-dict names, the original stays eager
    assert compiled.state_dict().keys() == model.state_dict().keys()
    assert compiled.backbone._compiled_call_impl is not None
    assert model.backbone._compiled_call_impl is None
    # a wrong comparison is caught: other structure -> None, other values -> large
    assert max_abs_diff((eager_out,), (eager_out, eager_out)) is None
    assert max_abs_diff(eager_out, eager_out + 1) > 0.99


def test_benchmark_tool_train_and_compare(tool, tmp_path):
    out = tmp_path / 'train.json'
    proc = tool(
        'analysis_tools/benchmark.py',
        'configs/shapes/fpn_r18_shapes.py',
        '--shape',
        '32',
        '48',
        '--repeat',
        '1',
        '--warmup',
        '1',
        '--mode',
        'train',
        '--json',
        out,
    )
    assert 'training step' in proc.stdout
    res = json.loads(out.read_text())
    assert res['mode'] == 'train' and res['time']['runs'] == 1 and res['peak_mem_bytes'] > 0
    cmp = tmp_path / 'cmp.json'
    proc = tool(
        'analysis_tools/benchmark.py',
        'configs/shapes/fpn_r18_shapes.py',
        '--shape',
        '32',
        '48',
        '--repeat',
        '1',
        '--warmup',
        '1',
        '--rounds',
        '2',
        '--no-memory',
        '--compare-config',
        'configs/shapes/fpn_shunted-nano_shapes.py',
        '--json',
        cmp,
    )
    assert 'Speed-up B/A' in proc.stdout
    res = json.loads(cmp.read_text())
    assert set(res['sides']) == {
        'configs/shapes/fpn_r18_shapes.py',
        'configs/shapes/fpn_shunted-nano_shapes.py',
    }
    assert all(len(s['round_medians']) == 2 for s in res['sides'].values())


def test_compile_backbone_in_place_through_a_wrapper():
    """--compile's function: compiles model.backbone (not the heads) through a model wrapper,
    keeps state-dict names, trains (gradients equal eager) and refuses a model without one."""
    import pytest
    from mmengine.model import MMDistributedDataParallel  # noqa: F401 (wrapper registry)
    from mmengine.registry import MODEL_WRAPPERS

    from mmattn.engine.compile import compile_backbone

    @MODEL_WRAPPERS.register_module(name='_TestWrapper', force=True)
    class _Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    torch.manual_seed(0)
    eager = _TinyDetector()
    model = _TinyDetector()
    model.load_state_dict(eager.state_dict())
    wrapped = _Wrapper(model)
    keys = list(wrapped.state_dict())
    assert compile_backbone(wrapped, dynamic=True) is wrapped
    assert list(wrapped.state_dict()) == keys
    assert model.backbone._compiled_call_impl is not None
    x = torch.randn(1, 3, 24, 20)
    for m in (eager, model):
        m(x).square().mean().backward()
    for (name, p), q in zip(eager.named_parameters(), model.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    with pytest.raises(ValueError, match='no `backbone`'):
        compile_backbone(torch.nn.Linear(2, 2))
