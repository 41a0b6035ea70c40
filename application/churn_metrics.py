"""How a churn ranking is judged: ROC AUC and precision among the top share of fans.

Plain Python, so that training, the worker and bench/models.py report the same figures and
the application layer needs no numerical library.
"""

from __future__ import annotations

from collections.abc import Sequence


def roc_auc(churned: Sequence[bool], risks: Sequence[float]) -> float | None:
    """The chance that a churned fan ranks above one that stayed (ties count half): the
    Mann-Whitney statistic. None when one of the two classes is empty."""
    positives = sum(churned)
    negatives = len(churned) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(risks)), key=lambda i: risks[i])
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and risks[order[end + 1]] == risks[order[start]]:
            end += 1
        mean_rank = (start + end) / 2 + 1  # tied scores share their mean rank
        rank_sum += mean_rank * sum(churned[order[i]] for i in range(start, end + 1))
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def precision_at(churned: Sequence[bool], risks: Sequence[float], share: float = 0.1) -> float:
    """The share of churned fans among the ``share`` ranked riskiest (at least one fan)."""
    if not churned:
        return 0.0
    top = max(1, round(len(churned) * share))
    ranked = sorted(range(len(risks)), key=lambda i: risks[i], reverse=True)[:top]
    return sum(churned[i] for i in ranked) / top
