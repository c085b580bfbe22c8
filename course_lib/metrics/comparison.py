"""Comparing two classifiers over N datasets (or N seeds): the Wilcoxon signed-rank test
(Demšar, 2006), with exact and normal-approximation p-values and a decision at level alpha.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from course_lib.metrics._inputs import _to_numpy

__all__ = ["WilcoxonResult", "wilcoxon_signed_rank"]


class WilcoxonResult(NamedTuple):
    """Outcome of :func:`wilcoxon_signed_rank`.

    * ``statistic`` T = min(R+, R−);   ``r_plus`` (B better), ``r_minus`` (A better)
    * ``z``  (T − N(N+1)/4) / sqrt(N(N+1)(2N+1)/24)  (tie-corrected), always reported
    * ``p_value`` two-sided, from the exact distribution or the normal approximation
    * ``method`` ``"exact"`` or ``"approx"``;  ``n`` differences used (zeros dropped)
    * ``reject`` p_value < alpha;  ``better`` ``"a"``, ``"b"`` or ``None``;  ``decision`` text
    """

    statistic: float
    z: float
    p_value: float
    reject: bool
    better: str | None
    decision: str
    method: str
    n: int
    r_plus: float
    r_minus: float
    alpha: float


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get the mean of the ranks they span (e.g. two tied for 1st: 1.5 each)."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    ranks = np.empty(len(values))
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_vals[end] != sorted_vals[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2  # mean of ranks start+1..end
            start = end
    return ranks


def _exact_signed_rank_pvalue(ranks: np.ndarray, r_plus: float) -> float:
    """Two-sided p from the exact null distribution of R+ given these ranks.

    Under H0 every rank is + or − with probability 1/2, so R+ is the sum of a random subset of
    the ranks. We count subsets per sum with a small dynamic programme (ranks are doubled to
    make tied half-ranks integers): exact for any n, also with ties (conditionally on them).
    """
    twice = np.rint(2 * ranks).astype(np.int64)
    counts = np.zeros(twice.sum() + 1)
    counts[0] = 1.0
    for r in twice:  # add rank r to every subset: counts'[s] = counts[s] + counts[s - r]
        counts[r:] = counts[r:] + counts[:-r]
    prob = counts / counts.sum()
    observed = int(round(2 * r_plus))
    p_low, p_high = prob[: observed + 1].sum(), prob[observed:].sum()
    return float(min(1.0, 2 * min(p_low, p_high)))


def wilcoxon_signed_rank(
    scores_a: Any,
    scores_b: Any,
    alpha: float = 0.05,
    exact: bool | None = None,
    zero_method: str = "wilcox",
) -> WilcoxonResult:
    r"""Wilcoxon signed-rank test: do classifiers A and B differ over N datasets (Demšar 2006)?

    1. d_i = score_b,i − score_a,i on each dataset i (higher score = better);
    2. rank |d_i| from 1 to N, tied values get the average rank;
    3. R+ = sum of ranks where B won (d_i > 0), R− = sum where A won (d_i < 0);
    4. T = min(R+, R−) and

       z = (T − N(N+1)/4) / sqrt(N(N+1)(2N+1)/24),

       approximately standard normal for large N (about N > 25). With tied |d_i| the variance
       is reduced by Σ(t³ − t)/48 over tie groups of size t (as in scipy).
    5. Two-sided p = 2 Φ(z); at alpha = 0.05, reject "A and B are equal" when z < −1.96.

    ``exact``: ``True`` computes p from the exact distribution of R+ (small N; also valid with
    ties, conditionally), ``False`` uses the normal approximation, ``None`` picks exact for
    N <= 25. ``zero_method``: ``"wilcox"`` drops d_i = 0 (scipy's default), ``"zsplit"`` ranks
    them and splits their ranks evenly between R+ and R− (Demšar's suggestion).
    Raises ``ValueError`` for empty or unequal-length input or when every d_i is 0.
    Agrees with ``scipy.stats.wilcoxon(scores_b, scores_a, zero_method, method="asymptotic",
    correction=False)``, and with ``method="exact"`` when no two |d_i| tie (scipy's exact
    table assumes distinct ranks; with ties the exact p-values here enumerate the tied ranks
    and differ slightly).
    """
    a = _to_numpy(scores_a, "scores_a").astype(np.float64).ravel()
    b = _to_numpy(scores_b, "scores_b").astype(np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"scores_a and scores_b must pair up: {a.shape} vs {b.shape}.")
    d = b - a
    if zero_method == "wilcox":
        d = d[d != 0]
    elif zero_method != "zsplit":
        raise ValueError(f"zero_method must be 'wilcox' or 'zsplit', got {zero_method!r}.")
    n = len(d)
    if n == 0 or not (d != 0).any():
        raise ValueError("all differences are zero: the two classifiers cannot be told apart.")
    ranks = _average_ranks(np.abs(d))
    r_plus = ranks[d > 0].sum() + ranks[d == 0].sum() / 2
    r_minus = ranks[d < 0].sum() + ranks[d == 0].sum() / 2
    t_stat = min(r_plus, r_minus)

    _, tie_sizes = np.unique(np.abs(d), return_counts=True)
    variance = n * (n + 1) * (2 * n + 1) / 24 - (tie_sizes**3 - tie_sizes).sum() / 48
    z = (t_stat - n * (n + 1) / 4) / math.sqrt(variance)

    use_exact = n <= 25 if exact is None else exact
    if use_exact:  # zero differences (zsplit) add a fixed half-rank to R+: leave them out
        p_value = _exact_signed_rank_pvalue(ranks[d != 0], ranks[d > 0].sum())
    else:
        p_value = min(1.0, 2 * 0.5 * math.erfc(-z / math.sqrt(2)))  # 2 Φ(z), z <= 0
    reject = p_value < alpha
    better = ("b" if r_plus > r_minus else "a") if reject else None
    if reject:
        decision = f"reject H0 (p = {p_value:.4g} < {alpha}): {better.upper()} is better"
    else:
        decision = f"no significant difference (p = {p_value:.4g} >= {alpha})"
    return WilcoxonResult(
        statistic=float(t_stat),
        z=float(z),
        p_value=float(p_value),
        reject=bool(reject),
        better=better,
        decision=decision,
        method="exact" if use_exact else "approx",
        n=n,
        r_plus=float(r_plus),
        r_minus=float(r_minus),
        alpha=alpha,
    )
