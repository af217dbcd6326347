"""AgentAttention against an explicit two-softmax implementation written from the formulas."""

import math

import pytest
import torch

from mmattn.models.attentions.agent_attention import AgentAttention


def interp_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """1-D bilinear (align_corners=False) resampling as an (n_out, n_in) matrix."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(math.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        lam = src - lo
        m[i, lo] += 1 - lam
        m[i, hi] += lam
    return m


def resize2d(t: torch.Tensor, size) -> torch.Tensor:
    """Resize the last two axes of ``t`` bilinearly: M_h @ t @ M_w^T."""
    mh = interp_matrix(size[0], t.shape[-2]).to(t)
    mw = interp_matrix(size[1], t.shape[-1]).to(t)
    return mh @ t @ mw.T


def adaptive_pool(img: torch.Tensor, grid) -> torch.Tensor:
    """(C, H, W) -> (C, gh*gw): mean over PyTorch's adaptive bins, row-major."""
    c, h, w = img.shape
    cells = []
    for i in range(grid[0]):
        r0, r1 = (i * h) // grid[0], -((-(i + 1) * h) // grid[0])
        for j in range(grid[1]):
            c0, c1 = (j * w) // grid[1], -((-(j + 1) * w) // grid[1])
            cells.append(img[:, r0:r1, c0:c1].mean(dim=(1, 2)))
    return torch.stack(cells, 1)


def softmax(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def reference(op: AgentAttention, x: torch.Tensor, hw) -> torch.Tensor:
    """Agent attention in float64, one image and one head at a time."""
    x = x.double()
    h, w = hw
    heads, c = op.num_heads, op.embed_dims
    d = c // heads
    p0 = math.isqrt(op.agent_num)
    gh, gw = op.agent_shape
    wq, wk, wv = op.qkv.weight.double().chunk(3, 0)
    bq, bk, bv = (
        op.qkv.bias.double().chunk(3, 0)
        if op.qkv.bias is not None
        else (torch.zeros(c, dtype=torch.float64),) * 3
    )
    # Agent-grid resampling: agents live on a p0 x p0 grid; new grid gh x gw (row-major).
    grid_map = torch.kron(interp_matrix(gh, p0), interp_matrix(gw, p0))  # (gh*gw, p0*p0)
    outs = []
    for img in x:
        q, k, v = img @ wq.T + bq, img @ wk.T + bk, img @ wv.T + bv  # (N, C)
        agents = adaptive_pool(q.T.reshape(c, h, w), (gh, gw)).T  # (n, C)
        o = torch.zeros_like(q)
        for hd in range(heads):
            sl = slice(hd * d, (hd + 1) * d)
            b1 = torch.zeros(p0 * p0, h * w, dtype=torch.float64)  # agents x tokens
            b2 = torch.zeros(h * w, p0 * p0, dtype=torch.float64)  # tokens x agents
            if op.with_bias:
                for a in range(p0 * p0):
                    an = resize2d(op.an_bias[hd, a].double(), (h, w))
                    ahw = op.ah_bias[0, hd, a].double() + op.aw_bias[0, hd, a].double()
                    b1[a] = (an + resize2d(ahw, (h, w))).reshape(-1)
                    na = resize2d(op.na_bias[hd, a].double(), (h, w))
                    haw = op.ha_bias[0, hd, :, :, a].double() + op.wa_bias[0, hd, :, :, a].double()
                    b2[:, a] = (na + resize2d(haw, (h, w))).reshape(-1)
            b1 = grid_map @ b1
            b2 = b2 @ grid_map.T
            s = op.scale
            agg = softmax(s * agents[:, sl] @ k[:, sl].T + b1) @ v[:, sl]  # agent aggregation
            o[:, sl] = softmax(s * q[:, sl] @ agents[:, sl].T + b2) @ agg  # agent broadcast
        v_img = v.T.reshape(1, c, h, w)
        dwc = torch.nn.functional.conv2d(
            v_img, op.dwc.weight.double(), op.dwc.bias.double(), padding=op.dwc.padding, groups=c
        )
        o = o + dwc.reshape(c, -1).T
        outs.append(o @ op.proj.weight.double().T + op.proj.bias.double())
    return torch.stack(outs)


def make(agent_shape=None, with_bias=True, fused=True, pretrain_hw=(7, 7)):
    torch.manual_seed(0)
    op = AgentAttention(
        embed_dims=16,
        num_heads=2,
        pretrain_hw=pretrain_hw,
        agent_num=9,
        agent_shape=agent_shape,
        with_bias=with_bias,
        fused_attn=fused,
    ).eval()
    with torch.no_grad():  # biases larger than their init so that they matter
        for name, p in op.named_parameters():
            if name.endswith('_bias') or name.endswith('.bias'):
                p.normal_(0, 0.5)
    return op


@pytest.mark.parametrize('hw', [(7, 7), (12, 12), (9, 13), (5, 3)])
@pytest.mark.parametrize('agent_shape', [None, (4, 4), (2, 5)])
@pytest.mark.parametrize('with_bias', [True, False])
@pytest.mark.parametrize('fused', [True, False])
def test_matches_two_softmax_reference(hw, agent_shape, with_bias, fused):
    op = make(agent_shape, with_bias, fused)
    x = torch.randn(2, hw[0] * hw[1], 16)
    with torch.no_grad():
        out = op(x, hw)
        ref = reference(op, x, hw)
    assert out.shape == x.shape
    assert (out.double() - ref).abs().max().item() <= 1e-5


def test_non_square_pretrain_hw_and_shapes():
    op = make(pretrain_hw=(6, 8))
    assert op.ah_bias.shape == (1, 2, 9, 6, 1) and op.wa_bias.shape == (1, 2, 1, 8, 9)
    x = torch.randn(1, 6 * 8, 16)
    with torch.no_grad():
        assert (op(x, (6, 8)).double() - reference(op, x, (6, 8))).abs().max() <= 1e-5


def test_fused_equals_math():
    fused, plain = make((3, 5), fused=True), make((3, 5), fused=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 11 * 6, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused(x, (11, 6)), plain(x, (11, 6)), rtol=0, atol=1e-5)


@pytest.mark.parametrize('hw, agent_shape', [((11, 6), (3, 5)), ((7, 7), None), ((4, 9), None)])
@pytest.mark.parametrize('with_bias', [True, False])
def test_cpu_folded_path_gradients_equal_math_path(hw, agent_shape, with_bias):
    """The CPU fast path folds the biases into the logits' GEMMs with its own backward
    (concat_matmul): every parameter's gradient and the input's equal the plain math path's
    (float64, batch 2, sizes on and off the pretraining size, resized and pretrained agent
    grids)."""
    ops = {}
    for fused in (True, False):
        op = make(agent_shape, with_bias, fused).double().train()
        x = torch.randn(
            2, hw[0] * hw[1], 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
        ).requires_grad_()
        out = op(x, hw)
        (
            out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
        ).sum().backward()
        ops[fused] = (op, x, out)
    (fop, fx, fout), (mop, mx, mout) = ops[True], ops[False]
    torch.testing.assert_close(fout, mout, rtol=0, atol=1e-12)
    torch.testing.assert_close(fx.grad, mx.grad, rtol=0, atol=1e-12)
    grads = dict(mop.named_parameters())
    for name, p in fop.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=0, atol=1e-12, msg=name)


@pytest.mark.parametrize('fused', [True, False])
def test_every_parameter_gets_a_gradient(fused):
    op = make((2, 2), fused=fused).train()
    x = torch.randn(2, 9 * 10, 16, requires_grad=True)
    op(x, (9, 10)).square().mean().backward()
    for name, p in op.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None


def test_bf16_autocast_no_nan():
    op = make((4, 4))
    x = torch.randn(2, 13 * 9, 16) * 10
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = op(x, (13, 9))
    assert torch.isfinite(out.float()).all()


def test_rejects_unsupported_arguments():
    with pytest.raises(TypeError, match='sr_ratio'):  # no spatial reduction, as officially
        AgentAttention(16, 2, sr_ratio=2)
    with pytest.raises(ValueError, match='square'):
        AgentAttention(16, 2, agent_num=10)
    with pytest.raises(ValueError, match='tokens'):
        make()(torch.randn(1, 10, 16), (3, 3))
