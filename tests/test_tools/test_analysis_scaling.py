"""Scaling study: exponent fit, one measured row, and the tool end to end on tiny maps."""

import csv

import pytest

from mmattn.analysis.ops import BASELINE, attention_ops, fit_exponent
from mmattn.analysis.scaling import exponents, measure_op


def test_fit_exponent_recovers_power_law():
    xs = [16, 64, 256, 1024]
    assert fit_exponent(xs, [3 * x**2 for x in xs]) == pytest.approx(2)
    assert fit_exponent(xs, [5 * x for x in xs]) == pytest.approx(1)


def test_softmax_flops_exponent_tends_to_two():
    # 4 N C^2 + 2 N^2 C: the quadratic term dominates once N >> C.
    rows = [
        measure_op(
            BASELINE, s, embed_dims=8, num_heads=2, repeat=1, warmup=0, backward=False, memory=False
        )
        for s in (16, 24, 32)
    ]
    assert not any(r['error'] for r in rows)
    assert 1.8 < exponents(rows, 'flops')[BASELINE] < 2.0


@pytest.mark.parametrize('name', list(attention_ops()))
def test_every_op_measures(name):
    row = measure_op(name, 16, embed_dims=16, num_heads=2, repeat=1, warmup=0)
    assert row['error'] == ''
    assert row['flops'] > 0 and row['fwd_ms'] > 0 and row['fwdbwd_ms'] > 0
    assert row['fwd_peak_mib'] > 0 and row['fwdbwd_peak_mib'] >= row['fwd_peak_mib'] * 0.5


def test_scaling_tool(tool, tmp_path):
    op = list(attention_ops())[0]
    proc = tool(
        'analysis_tools/attention_scaling.py',
        '--ops',
        BASELINE,
        op,
        '--sides',
        '8',
        '12',
        '--embed-dims',
        '16',
        '--repeat',
        '1',
        '--warmup',
        '0',
        '--out-dir',
        tmp_path,
    )
    assert 'exponent' in proc.stdout
    with open(tmp_path / 'attention_scaling.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['op'], r['side']) for r in rows] == [
        (BASELINE, '8'),
        (BASELINE, '12'),
        (op, '8'),
        (op, '12'),
    ]
    png = tmp_path / 'attention_scaling.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    png.unlink()
    tool(
        'analysis_tools/attention_scaling.py',
        '--from-csv',
        tmp_path / 'attention_scaling.csv',
        '--out-dir',
        tmp_path,
    )
    assert png.exists()
