"""Gradients are per-sample: a batch's gradient equals the sum of its samples' gradients.

Every backbone maps each image independently (drop-path off, BatchNorms frozen), so the
gradient of a batch of two must be the sum of the gradients of the two images run alone, with
batch size 1. DDP relies on exactly this (each process runs a smaller batch), and so does any
user who trains with one image per GPU.

This caught a silent PyTorch CPU bug (torch 2.13): ``BatchNorm2d`` backward returns wrong
input, weight and bias gradients when the incoming gradient is channels-last with a size-1 batch
whose stride is not the canonical one, which is what ``x.flatten(2).transpose(1, 2)`` produces
in backward. The forward is unaffected, so only a gradient check sees it; see
``mmattn.models.layers.map_to_tokens`` for the safe layout change.
"""

import pytest
import torch
from reliability_families import FAMILIES, landed


def _grads(model, x, weights):
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    loss = sum((out * w).sum() for out, w in zip(model(x), weights))
    loss.backward()
    return {
        'input': x.grad,
        **{name: p.grad for name, p in model.named_parameters() if p.grad is not None},
    }


@pytest.mark.parametrize('size', [(64, 64), (72, 88)])
@pytest.mark.parametrize('family', list(FAMILIES))
def test_batch_gradient_is_sum_of_sample_gradients(family, size):
    assert family in landed()
    import mmattn.models  # noqa: F401
    from mmattn.registry import MODELS

    cfg = dict(FAMILIES[family][0], drop_path_rate=0.0)
    cfg['type'] = cfg['type'].split('.', 1)[1]
    if 'norm_eval' in MODELS.get(cfg['type']).__init__.__code__.co_varnames:
        cfg['norm_eval'] = True
    torch.manual_seed(0)
    model = MODELS.build(cfg).double()
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        outs = model(x)
    weights = [torch.randn_like(out) for out in outs]

    both = _grads(model, x, weights)
    first = _grads(model, x[:1], [w[:1] for w in weights])
    second = _grads(model, x[1:], [w[1:] for w in weights])
    assert both.keys() == first.keys() == second.keys()
    torch.testing.assert_close(
        both['input'],
        torch.cat([first['input'], second['input']]),
        rtol=1e-9,
        atol=1e-10,
        msg=lambda m: f'{family} input: {m}',
    )
    for name in both:
        if name == 'input':
            continue
        torch.testing.assert_close(
            both[name],
            first[name] + second[name],
            rtol=1e-9,
            atol=1e-9 * both[name].abs().max().item() + 1e-12,
            msg=lambda m, name=name: f'{family} {name}: {m}',
        )
