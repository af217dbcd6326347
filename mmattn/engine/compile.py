"""``torch.compile`` for the backbone of a detector or segmentor (the tools' ``--compile``).

Only the backbone is compiled, in place (:meth:`torch.nn.Module.compile`): it is where the
attention runs and it traces as one graph. The rest of an MMDetection/MMSegmentation model (data
structures, assigners, NMS, mask pasting) is data dependent and gains little. In-place
compilation keeps the module tree and the state-dict names, so checkpoints (``load_from``,
``--resume``, ``init_cfg``) load and save as without it. MMEngine's own ``cfg.compile`` compiles
the whole ``train_step`` (optimizer update included) and is left alone.

Shapes: torch's automatic dynamic (``dynamic=None``) by default. A fixed-size recipe (the
segmentation crops) keeps one static graph; the first new input size recompiles once into a
graph with symbolic sizes, which later sizes reuse (a multi-scale run does not recompile per
size). Starting static is much cheaper than ``dynamic=True`` from the start (the compile times
are in docs/benchmark.md).
"""

from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper

from mmattn.utils.cli import UserInputError

__all__ = ['compile_backbone']


def compile_backbone(
    model: nn.Module,
    dynamic: Optional[bool] = None,
    fullgraph: bool = False,
    backend: str = 'inductor',
    mode: Optional[str] = None,
) -> nn.Module:
    """Compile ``model.backbone`` in place (``model`` may be wrapped, e.g. by DDP).

    Args:
        model (nn.Module): A detector/segmentor with a ``backbone``, or a model wrapper of one.
        dynamic (bool, optional): ``torch.compile``'s ``dynamic``. Defaults to None
            (static first, one dynamic recompile on the first new size).
        fullgraph (bool): Fail on a graph break instead of splitting the graph.
            Defaults to False.
        backend (str): ``torch.compile`` backend. Defaults to ``'inductor'``.
        mode (str, optional): ``torch.compile`` mode. Defaults to None.

    Returns:
        nn.Module: ``model`` itself.

    Raises:
        UserInputError: ``backend`` is no ``torch.compile`` backend, or ``model`` has no
            ``backbone`` (the tools print it as one ``error:`` line).
    """
    known = torch._dynamo.list_backends(exclude_tags=())
    if isinstance(backend, str) and backend not in known:
        raise UserInputError(
            f'--compile backend {backend!r} is not a torch.compile backend; '
            'use inductor (the default), aot_eager or eager (the full list: '
            'torch._dynamo.list_backends(exclude_tags=()))'
        )
    inner = model.module if is_model_wrapper(model) else model
    backbone = getattr(inner, 'backbone', None)
    if not isinstance(backbone, nn.Module):
        raise UserInputError(
            f'--compile compiles the backbone, but {type(inner).__name__} '
            'has no `backbone` module; compile the model yourself or drop '
            '--compile'
        )
    backbone.compile(dynamic=dynamic, fullgraph=fullgraph, backend=backend, mode=mode)
    MMLogger.get_current_instance().info(
        f'compiled the backbone ({type(backbone).__name__}) with torch.compile(dynamic='
        f'{dynamic}, fullgraph={fullgraph}, backend={backend!r}); the first iterations '
        'include compilation'
    )
    return model
