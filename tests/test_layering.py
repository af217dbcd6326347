"""The layers import downwards only: utils knows neither the models nor the engine, the models
do not import the engine, and what a recipe names still resolves. Each check runs in a fresh
interpreter, so nothing an earlier test imported can hide a missing import."""

import subprocess
import sys


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_utils_import_neither_models_nor_engine():
    out = _run("""
import sys
import mmattn.utils, mmattn.utils.atomic, mmattn.utils.checkpoint, mmattn.utils.cli
import mmattn.utils.data_checks
print(sorted(m for m in sys.modules if m.startswith(('mmattn.models', 'mmattn.engine'))))
""")
    assert out.strip() == '[]', out


def test_optim_wrapper_resolves_from_a_recipe_config():
    """A recipe imports only ``mmattn.models`` and names ``mmattn.CPUAmpOptimWrapper`` (what
    ``tools/train.py --amp`` writes on CPU); the registry's ``locations`` bring the engine."""
    out = _run("""
import sys
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

cfg = Config(dict(
    default_scope='mmdet',
    custom_imports=dict(imports=['mmattn.models'], allow_failed_imports=False),
    optim_wrapper=dict(type='mmattn.CPUAmpOptimWrapper', dtype='bfloat16',
                       optimizer=dict(type='SGD', lr=0.1))))
import_modules_from_strings(**cfg.custom_imports)
assert 'mmattn.engine' not in sys.modules, 'importing the models imported the engine'
init_default_scope(cfg.default_scope)
wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
print(type(wrapper).__module__, type(wrapper).__name__, wrapper.cast_dtype)
""")
    assert out.split() == ['mmattn.engine.optim_wrapper', 'CPUAmpOptimWrapper', 'torch.bfloat16']


def test_mmattn_imports_without_flex_attention():
    """A torch without ``flex_attention``: mmattn and BRA still work; only the flex path
    refuses, with one clear error."""
    out = _run("""
import sys
import torch
sys.modules['torch.nn.attention.flex_attention'] = None  # the import now raises ImportError
import mmattn.models
from mmattn.models.attentions.bi_level_routing_attention import BiLevelRoutingAttention
from mmattn.models.attentions.bra_flex import bra_flex_attention
y = BiLevelRoutingAttention(embed_dims=32, num_heads=2, n_win=2, topk=2)(
    torch.randn(1, 64, 32), (8, 8))
assert y.shape == (1, 64, 32)
q = torch.randn(1, 2, 64, 16)
try:
    bra_flex_attention(q, q, q, torch.zeros(1, 4, 2, dtype=torch.long), 16)
except ImportError as err:
    print('refused:', err)
""")
    assert 'refused: the block-sparse BRA path needs torch.nn.attention.flex_attention' in out
