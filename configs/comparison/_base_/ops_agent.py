# Agent attention (Agent-PVT's setting): 9/16/49/49 agents per stage, no spatial reduction.
comparison_attn = [dict(type='mmattn.AgentAttention', agent_num=n) for n in (9, 16, 49, 49)]
