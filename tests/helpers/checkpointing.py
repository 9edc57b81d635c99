"""Check that ``with_cp`` really checkpoints: same results, blocks recomputed in backward."""

from __future__ import annotations

from typing import Dict

import torch


def count_block_calls(model: torch.nn.Module) -> Dict[str, int]:
    """Live count of calls per block (``stages.i.blocks.j``), filled in by forward hooks."""
    calls: Dict[str, int] = {}
    for stage_index, stage in enumerate(model.stages):
        for block_index, block in enumerate(stage.blocks):
            name = f'stages.{stage_index}.blocks.{block_index}'
            calls[name] = 0

            def hook(module, args, _name=name):
                calls[_name] += 1

            block.register_forward_pre_hook(hook)
    return calls


def assert_with_cp_recomputes(
    plain: torch.nn.Module, checkpointed: torch.nn.Module, x: torch.Tensor
) -> None:
    """Same outputs and gradients; every block of ``checkpointed`` runs again in backward."""
    checkpointed.load_state_dict(plain.state_dict())
    counts = [count_block_calls(model) for model in (plain, checkpointed)]
    outs = [model.train()(x) for model in (plain, checkpointed)]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    assert all(n == 1 for c in counts for n in c.values())  # one forward each
    for out in outs:
        sum(o.square().mean() for o in out).backward()
    plain_calls, checkpointed_calls = counts
    assert all(n == 1 for n in plain_calls.values())
    assert all(n == 2 for n in checkpointed_calls.values()), checkpointed_calls  # recomputed
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        assert a.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, msg=name)
