"""Batch linkage: block, compare, learn the model without labels, score, cluster."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from parcours.matching.blocking import TRAINING_RULES, candidate_pairs
from parcours.matching.compare import COMPARISONS, Columns, compare
from parcours.matching.model import (
    MatchModel,
    estimate_frequencies,
    estimate_m,
    estimate_prior,
    estimate_u,
)
from parcours.matching.normalize import Prepared, prepare
from parcours.matching.records import PersonRecord

# A pair at or above this match probability is the same person (batch linkage default): more likely
# one person than two (the model is calibrated: see ``estimate_prior``).
DEFAULT_THRESHOLD = 0.5
CHUNK = 200_000  # pairs compared at once (bounds memory)
TRAINING_PAIRS = 100_000  # pairs EM learns from, per training rule

Progress = Callable[[str, int, int], None]


@dataclass
class Linkage:
    clusters: dict[str, str]  # record id -> cluster id (the smallest record id of its cluster)
    pairs: list[tuple[str, str, float]]  # every candidate pair with its match probability
    model: MatchModel
    threshold: float


def link_records(
    records: Sequence[PersonRecord],
    *,
    threshold: float | None = None,
    model: MatchModel | None = None,
    train: bool = True,
    progress: Progress | None = None,
) -> Linkage:
    """Find which records are the same person. Trains a model on the records themselves (unless
    ``train`` is false and a ``model`` is given) and links pairs at or above ``threshold``."""
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not 0 < threshold < 1:
        raise ValueError("threshold must be between 0 and 1 (exclusive)")
    ids = [record.id for record in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique")
    prepared = [prepare(record) for record in records]
    columns = Columns(prepared)
    left, right = candidate_pairs(prepared)
    model = model or MatchModel.default()
    if progress:
        progress("compare", 0, len(left))
    levels_parts = []
    for start in range(0, len(left), CHUNK):
        levels_parts.append(compare(columns, left[start : start + CHUNK], right[start : start + CHUNK]))
        if progress:
            progress("compare", min(start + CHUNK, len(left)), len(left))
    levels = np.concatenate(levels_parts) if levels_parts else np.zeros((0, len(model.m)), dtype=np.int8)
    if train:
        train_model(model, prepared, columns)
    weights = model.weights(levels, columns, left).sum(axis=1)
    if train:
        estimate_prior(weights, model, len(records))
    probability = model.probability(weights)
    linked = probability >= threshold
    clusters = _components(ids, left[linked], right[linked])
    pairs = [
        (ids[i], ids[j], float(p))
        for i, j, p in zip(left.tolist(), right.tolist(), probability.tolist(), strict=True)
    ]
    return Linkage(clusters, pairs, model, threshold)


def train_model(model: MatchModel, prepared: Sequence[Prepared], columns: Columns) -> None:
    """u from random pairs, name frequencies, then m by EM once per training rule (averaged)."""
    rng = np.random.default_rng(20240601)
    estimate_u(columns, model, rng)
    estimate_frequencies(columns, model)
    estimates: dict[int, list[list[float]]] = {}
    names = [c.name for c in COMPARISONS]
    for _, rule, forced in TRAINING_RULES:
        left, right = candidate_pairs(prepared, rule)
        if len(left) < 20:
            continue
        if len(left) > TRAINING_PAIRS:  # a random sample is enough to learn from
            keep = np.sort(rng.choice(len(left), size=TRAINING_PAIRS, replace=False))
            left, right = left[keep], right[keep]
        levels = compare(columns, left, right)
        blocked = {names.index(name) for name in forced}
        for index, m in estimate_m(levels, model, blocked).items():
            estimates.setdefault(index, []).append(m)
    for index, found in estimates.items():
        model.m[index] = [float(v) for v in np.mean(np.array(found), axis=0)]
    model.trained_on = len(prepared)


def _components(ids: list[str], left: np.ndarray, right: np.ndarray) -> dict[str, str]:
    """Connected components of the linked pairs (union-find); each named by its smallest id."""
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    smallest: dict[int, str] = {}
    for index, record_id in enumerate(ids):
        top = root(index)
        if top not in smallest or record_id < smallest[top]:
            smallest[top] = record_id
    return {record_id: smallest[root(index)] for index, record_id in enumerate(ids)}
