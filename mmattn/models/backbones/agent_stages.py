"""Per-stage agent numbers and grids, shared by the skeletons that default to agent attention."""

from typing import Optional, Sequence, Union

__all__ = ['AgentStagesMixin']


class AgentStagesMixin:
    """Adds ``agent_num`` / ``agent_shape`` to the stage facts of a :class:`BaseBackbone`.

    They reach every op that declares them and are ignored by other ops, so ``attn_cfgs`` may
    swap in any op. Call :meth:`set_agents` before ``BaseBackbone.__init__``.
    """

    def set_agents(
        self, arch: Union[str, dict], agent_nums: Sequence[int], agent_shapes: Optional[Sequence]
    ) -> None:
        """Check and store one agent number (and run-time grid, or None) per stage."""
        n = len(self.parse_arch(arch)['depths'])
        self.agent_nums = [int(a) for a in agent_nums]
        self.agent_shapes = list(agent_shapes) if agent_shapes is not None else [None] * n
        if not len(self.agent_nums) == len(self.agent_shapes) == n:
            raise ValueError(f'agent_nums and agent_shapes need one entry per stage ({n})')

    def stage_facts(self, i: int, j: int) -> dict:
        return dict(
            super().stage_facts(i, j),
            agent_num=self.agent_nums[i],
            agent_shape=self.agent_shapes[i],
        )
