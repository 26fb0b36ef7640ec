"""Batch deduplication: a CSV file of people, or the profiles of the database."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.db.types import utcnow
from parcours.identity.resolution import lock_identity_graph
from parcours.ids import new_id
from parcours.matching.linkage import Linkage, Progress, link_records
from parcours.matching.realtime import PairScores, keys_of, record_from_traits, save_model, store_keys
from parcours.matching.records import FIELDS, PersonRecord
from parcours.models import MatchReview, Profile


class CsvProblem(ValueError):
    """The CSV file cannot be read as people: says which column or row."""


def parse_map(items: Iterable[str]) -> dict[str, str]:
    """``field=column`` pairs (``--map given_name=prenom``) -> {field: column}."""
    mapping: dict[str, str] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not column.strip():
            raise CsvProblem(f"--map {item!r}: expected FIELD=COLUMN")
        if field.strip() not in FIELDS:
            raise CsvProblem(f"--map {item!r}: unknown field {field!r}; fields: {', '.join(FIELDS)}")
        mapping[field.strip()] = column.strip()
    return mapping


def read_people(path: Path, id_column: str, mapping: dict[str, str]) -> list[PersonRecord]:
    """Rows of a CSV file as records: each field from the column named like it, or as ``mapping`` says."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if id_column not in header:
            raise CsvProblem(f"{path}: no column {id_column!r} (columns: {', '.join(header)})")
        columns = {f: mapping.get(f, f) for f in FIELDS}
        missing = [c for f, c in columns.items() if f in mapping and c not in header]
        if missing:
            raise CsvProblem(f"{path}: mapped column(s) not found: {', '.join(missing)}")
        used = {f: c for f, c in columns.items() if c in header}
        if not used:
            raise CsvProblem(f"{path}: no column of a person field ({', '.join(FIELDS)}); use --map")
        records, seen = [], set()
        for line, row in enumerate(reader, start=2):
            record_id = (row.get(id_column) or "").strip()
            if not record_id:
                raise CsvProblem(f"{path}, line {line}: empty {id_column}")
            if record_id in seen:
                raise CsvProblem(f"{path}, line {line}: duplicate {id_column} {record_id!r}")
            seen.add(record_id)
            values = {f: (row.get(c) or "").strip() or None for f, c in used.items()}
            records.append(PersonRecord(id=record_id, **values))
    return records


def write_clusters(path: Path, linkage: Linkage, order: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["record_id", "cluster_id"])
        for record_id in order:
            writer.writerow([record_id, linkage.clusters[record_id]])


def dedupe_profiles(
    session: Session, *, review_threshold: float, progress: Progress | None = None
) -> tuple[Linkage, int]:
    """Link the active profiles: train and store the model, rebuild every profile's blocking keys
    (real-time matching uses both), and queue pairs at or above ``review_threshold`` for review
    (pairs already reviewed are skipped). Returns the linkage and the number of new review items."""
    # It rewrites every profile's blocking keys: writers (and their caches of the keys) must know.
    lock_identity_graph(session)
    records = []
    for profile_id, traits in session.execute(
        select(Profile.id, Profile.traits).where(Profile.merged_into_id.is_(None))
    ):
        record = record_from_traits(profile_id, traits)
        if record is not None:
            records.append(record)
    linkage = link_records(records, threshold=max(review_threshold, 0.5), progress=progress)
    save_model(session, linkage.model)
    store_keys(session, {record.id: keys_of(record) for record in records})
    known = {(a, b) for a, b in session.execute(select(MatchReview.profile_a, MatchReview.profile_b))}
    likely = sorted(
        {(min(a, b), max(a, b)) for a, b, probability in linkage.pairs if probability >= review_threshold}
        - known
    )
    if likely:
        scores = PairScores(linkage.model, {record.id: record for record in records}, likely)
        now = utcnow()
        session.add_all(
            MatchReview(id=new_id("mrv"), profile_a=a, profile_b=b, probability=float(scores.probability[k]),
                        evidence=scores.evidence(k), status="pending", created_at=now, decided_at=None,
                        merge_id=None)
            for k, (a, b) in enumerate(likely)
        )  # fmt: skip
    return linkage, len(likely)


__all__ = ["CsvProblem", "dedupe_profiles", "parse_map", "read_people", "write_clusters"]
