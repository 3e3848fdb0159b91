"""Lab 3's use of the core time budget (:mod:`labs_utils.budget`), and torch.optim warmed up outside it."""
from __future__ import annotations

from ..budget import Clock, OverBudget, call_within, time_budget

__all__ = ["Clock", "OverBudget", "call_within", "time_budget", "warm_up_optimizers"]

_warm = False


def warm_up_optimizers() -> None:
    """Run torch.optim's base class once outside any budget: its first use imports for seconds (torch._dynamo)."""
    global _warm
    if _warm:
        return
    import torch
    from torch.optim.lr_scheduler import LambdaLR

    optimizer = torch.optim.Optimizer([torch.zeros(1, requires_grad=True)], {"lr": 0.1})
    LambdaLR(optimizer, lambda t: 1.0)
    optimizer.zero_grad(set_to_none=False)
    optimizer.load_state_dict(optimizer.state_dict())
    _warm = True
