"""Compiled with dynamic shapes, a backbone traces one graph for many input sizes, quickly.

A multi-scale detection run feeds a new image size nearly every iteration; each recompile costs
tens of seconds to minutes. Python code that turns a size into a Python value (an f-string of
the size, a branch on whether padding is needed) makes Dynamo guard on that value, so the next
size recompiles. Two such cases were found and removed: Shunted's attention formatted a
recording title from the key-map size on every call, BiFormer's routing attention padded only
when the size needed it. The Swin skeleton (Agent-Swin, FLatten-Swin) wrote its padded sizes
as ``size + (p - size % p) % p``; nested over four stages, sympy's simplification of those
sizes did not finish tracing in 6 minutes; written as ``p * ceil(size / p)`` they trace in
about 30 s. The counting backend below runs the traced graphs eagerly (no code generation),
so the test costs Dynamo tracing only.

Not covered: FLatten-PVT picks its computation order from the token counts by design (one more
graph when a size crosses that threshold); EA-PVT shares Agent-PVT's skeleton.
"""

import pytest
import torch
from reliability_families import FAMILIES

# Realistic sizes (every stage's map larger than one region or window), none square: Dynamo
# specialises sizes 0 and 1 and, by duck sizing, equal sizes.
SIZES = [(320, 480), (384, 416), (448, 320), (352, 544)]


@pytest.mark.parametrize(
    'family', ['shunted', 'biformer', 'agent-swin', 'flatten-swin', 'agent-pvt']
)
def test_one_graph_for_four_input_sizes(family):
    import mmattn.models  # noqa: F401
    from mmattn.registry import MODELS

    cfg = FAMILIES[family][0]
    torch._dynamo.reset()
    torch.manual_seed(0)
    backbone = MODELS.build(dict(cfg, type=cfg['type'].split('.', 1)[1])).eval()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(backbone, backend=counting_backend, dynamic=True, fullgraph=True)
    with torch.no_grad():
        for hw in SIZES:
            x = torch.randn(2, 3, *hw)
            for got, want in zip(compiled(x), backbone(x)):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()
    assert len(graphs) == 1, f'{family}: {len(graphs)} graphs for {len(SIZES)} sizes'
