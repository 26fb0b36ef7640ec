"""The Fellegi-Sunter match model: per comparison level, how likely it is among true matches (m) and
among non-matches (u); a pair's evidence is the product of m/u over its comparisons, turned into a
match probability with the prior. Learned without labels:

* u from random pairs of the data (almost all of them are non-matches);
* m by expectation-maximisation, once per training blocking rule, over the pairs that rule finds and
  without the comparisons it forces to agree, u held fixed;
* the prior (the probability that two records taken at random are one person) as the fixed point of
  the expected number of matches among the candidates over all pairs;
* exact agreement on a name is worth more for a rare name than a common one (term-frequency
  adjustment: the agreement's u is replaced by the value's frequency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from parcours.matching.compare import COMPARISONS, Columns, Levels, compare

EM_ITERATIONS = 40
RANDOM_PAIRS = 200_000
# Until trained: m and u per level 1..n (a reasonable model for customer data, refined by training).
DEFAULT_M = {
    6: [0.80, 0.02, 0.08, 0.06, 0.035, 0.005],
    5: [0.82, 0.08, 0.06, 0.035, 0.005],
    4: [0.80, 0.12, 0.05, 0.03],
    3: [0.90, 0.06, 0.04],
}
# Conservative: an exact agreement on one field is taken to be common among non-matches (people of one
# household share an address; common names), so no single field decides.
DEFAULT_U = {
    6: [0.002, 0.0005, 0.003, 0.01, 0.02, 0.9645],
    5: [0.02, 0.005, 0.01, 0.05, 0.915],
    4: [0.005, 0.004, 0.02, 0.971],
    3: [0.02, 0.02, 0.96],
}


@dataclass
class MatchModel:
    m: list[list[float]]  # per comparison, per level 1..n
    u: list[list[float]]
    prior: float  # probability that two records taken at random are one person
    # Relative frequency of each value of a term-frequency field (only values seen more than once).
    frequencies: dict[str, dict[str, float]] = field(default_factory=dict)
    # Frequency assumed for a value not in ``frequencies`` (seen once, or new).
    rare_frequency: dict[str, float] = field(default_factory=dict)
    trained_on: int = 0  # candidate pairs EM ran on (0: the defaults)

    @classmethod
    def default(cls) -> MatchModel:
        return cls(
            m=[list(DEFAULT_M[len(c.levels)]) for c in COMPARISONS],
            u=[list(DEFAULT_U[len(c.levels)]) for c in COMPARISONS],
            prior=1e-4,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "comparisons": [c.name for c in COMPARISONS],
            "m": self.m,
            "u": self.u,
            "prior": self.prior,
            "frequencies": self.frequencies,
            "rare_frequency": self.rare_frequency,
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchModel:
        if data.get("comparisons") != [c.name for c in COMPARISONS]:
            return cls.default()  # stored by another version of the comparisons: start over
        return cls(
            m=data["m"],
            u=data["u"],
            prior=data["prior"],
            frequencies=data.get("frequencies", {}),
            rare_frequency=data.get("rare_frequency", {}),
            trained_on=data.get("trained_on", 0),
        )

    # ----------------------------------------------------------------------------- scoring
    def weight_table(self) -> NDArray[np.float64]:
        """log2(m/u) per comparison (rows) and level (columns; level 0, unknown, weighs 0)."""
        width = 1 + max(len(c.levels) for c in COMPARISONS)
        table = np.zeros((len(COMPARISONS), width))
        for index, (m, u) in enumerate(zip(self.m, self.u, strict=True)):
            for level, (m_l, u_l) in enumerate(zip(m, u, strict=True), start=1):
                table[index, level] = math.log2(max(m_l, 1e-9) / max(u_l, 1e-9))
        return table

    def weights(
        self, levels: Levels, columns: Columns | None = None, left: NDArray[np.int64] | None = None
    ) -> NDArray[np.float64]:
        """Each comparison's weight (log2 Bayes factor) for each pair; with ``columns`` and ``left``,
        exact name agreements get their term-frequency adjustment."""
        table = self.weight_table()
        per_field = table[np.arange(len(COMPARISONS)), levels.astype(np.int64)]
        if columns is not None and left is not None:
            for index, comparison in enumerate(COMPARISONS):
                name = comparison.frequency_field
                if name is None or name not in self.rare_frequency:
                    continue
                exact = levels[:, index] == 1
                if not exact.any():
                    continue
                u_exact = max(self.u[index][0], 1e-9)
                known = self.frequencies.get(name, {})
                rare = self.rare_frequency[name]
                values = columns.text[name][left[exact]]
                frequency = np.fromiter(
                    (known.get(v, rare) for v in values), dtype=np.float64, count=len(values)
                )
                per_field[exact, index] += np.log2(u_exact / np.maximum(frequency, 1e-9))
        return per_field

    def probability(self, total_weight: NDArray[np.float64]) -> NDArray[np.float64]:
        prior_odds = self.prior / (1 - self.prior)
        odds = prior_odds * np.exp2(np.clip(total_weight, -60, 60))
        return np.asarray(odds / (1 + odds), dtype=np.float64)


# ------------------------------------------------------------------------------------- training
def estimate_u(columns: Columns, model: MatchModel, rng: np.random.Generator) -> None:
    """u per level: how often random pairs (nearly all non-matches) fall in each level."""
    n = columns.size
    if n < 3:
        return
    count = min(RANDOM_PAIRS, n * (n - 1) // 2)
    left = rng.integers(0, n, size=count)
    right = rng.integers(0, n, size=count)
    keep = left != right
    levels = compare(columns, left[keep], right[keep])
    for index, comparison in enumerate(COMPARISONS):
        column = levels[:, index]
        width = len(comparison.levels)
        counts = np.bincount(column, minlength=width + 1)[1:].astype(np.float64)
        if counts.sum() < 50:
            continue  # too little evidence: keep the defaults
        # Half a pair of smoothing: a level never seen among random pairs is rare, not impossible.
        model.u[index] = list((counts + 0.5) / (counts.sum() + 0.5 * width))


def estimate_frequencies(columns: Columns, model: MatchModel) -> None:
    for comparison in COMPARISONS:
        name = comparison.frequency_field
        if name is None:
            continue
        values = columns.text[name][columns.codes[name] >= 0]
        if len(values) == 0:
            continue
        unique, counts = np.unique(values.astype(str), return_counts=True)
        total = float(len(values))
        model.frequencies[name] = {
            str(v): float(c) / total for v, c in zip(unique, counts, strict=True) if c > 1
        }
        model.rare_frequency[name] = 1.0 / total


def estimate_m(levels: Levels, model: MatchModel, blocked: set[int]) -> dict[int, list[float]]:
    """EM over the pairs one training blocking rule found, u fixed; m per level of every comparison
    except those in ``blocked`` (the rule forces them to agree: they carry no evidence here).
    Runs on distinct level patterns. Returns the m estimates; ``model`` is not changed."""
    if len(levels) == 0:
        return {}
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    used = [index for index in range(len(COMPARISONS)) if index not in blocked]
    m = {index: list(model.m[index]) for index in used}
    prior = 0.5
    for _ in range(EM_ITERATIONS):
        table = np.zeros((len(COMPARISONS), 1 + max(len(c.levels) for c in COMPARISONS)))
        for index in used:
            for level, (m_l, u_l) in enumerate(zip(m[index], model.u[index], strict=True), start=1):
                table[index, level] = math.log2(max(m_l, 1e-9) / max(u_l, 1e-9))
        weight = table[np.arange(len(COMPARISONS)), patterns.astype(np.int64)].sum(axis=1)
        odds = (prior / (1 - prior)) * np.exp2(np.clip(weight, -60, 60))
        match = odds / (1 + odds) * counts
        prior = float(np.clip(match.sum() / counts.sum(), 1e-6, 1 - 1e-6))
        for index in used:
            width = len(COMPARISONS[index].levels)
            per_level = np.bincount(patterns[:, index], weights=match, minlength=width + 1)[1:]
            total = per_level.sum()
            if total > 0:
                m[index] = list((per_level + 1e-3) / (total + 1e-3 * width))
    return m


def estimate_prior(weights: NDArray[np.float64], model: MatchModel, records: int) -> None:
    """The probability that two records taken at random are one person. u comes from random pairs, so
    the prior must be the one of random pairs too (not of the candidates blocking found: they share a
    key, which u does not know). Fixed point of: expected matches among the candidates (pairs outside
    them count as non-matches) over all pairs."""
    all_pairs = records * (records - 1) / 2
    if len(weights) == 0 or all_pairs <= 0:
        return
    prior = min(0.5, len(weights) / all_pairs)
    for _ in range(50):
        odds = (prior / (1 - prior)) * np.exp2(np.clip(weights, -60, 60))
        updated = float(np.clip((odds / (1 + odds)).sum() / all_pairs, 1e-12, 0.5))
        if abs(updated - prior) <= 1e-6 * prior:
            break
        prior = updated
    model.prior = prior
