"""`parcours identity dedupe`: a CSV file of people, or the database's profiles into the review queue."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcours.cli import app
from parcours.config import Settings, get_settings
from parcours.db.engine import Database
from parcours.matching.realtime import MODEL_SETTING
from parcours.matching.review import list_reviews
from parcours.models import InstanceSetting
from tests.helpers import ingest, make_source

PEOPLE = [
    ("1", "Hélène", "Dupont", "1984-03-07", "12 rue des Lilas", "Lyon", "69003"),
    ("2", "Helene", "DUPONT", "07/03/1984", "12 rue des lilas", "LYON", "69003"),
    ("3", "Robert", "Smith", "1970-01-02", "3 High Street", "Leeds", "LS1 4AP"),
    ("4", "Bob", "Smith", "19700102", "3 High St", "Leeds", "LS14AP"),
    ("5", "Marc", "Durand", "1990-11-21", "4 avenue Foch", "Paris", "75016"),
    ("6", "Claire", "Dupont", "1987-05-30", "12 rue des Lilas", "Lyon", "69003"),
    ("7", "Jean", "Martin", "1955-06-15", "8 place Bellecour", "Lyon", "69002"),
    ("8", "Jean", "Martin", "1955-06-15", "8 pl. Bellecour", "Lyon", "69002"),
]


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PARCOURS_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def write_people(path: Path, header: tuple[str, ...]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(PEOPLE)


def test_a_csv_of_people_becomes_clusters(tmp_path: Path) -> None:
    source, out = tmp_path / "people.csv", tmp_path / "clusters.csv"
    write_people(source, ("id", "prenom", "nom", "naissance", "street", "locality", "postcode"))
    result = CliRunner().invoke(
        app,
        ["identity", "dedupe", str(source), "--out", str(out),
         "--map", "given_name=prenom", "--map", "surname=nom", "--map", "birth_date=naissance"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        clusters = {row["record_id"]: row["cluster_id"] for row in csv.DictReader(handle)}
    assert list(clusters) == [p[0] for p in PEOPLE]  # one line per record, in file order
    assert (
        clusters["1"] == clusters["2"] and clusters["3"] == clusters["4"] and clusters["7"] == clusters["8"]
    )
    assert len({clusters[i] for i in ("1", "3", "5", "6", "7")}) == 5


@pytest.mark.parametrize(
    ("args", "header", "message"),
    [
        (["--id-column", "nope"], ("id", "given_name"), "no column 'nope'"),
        (["--map", "shoe_size=x"], ("id", "given_name"), "unknown field 'shoe_size'"),
        (["--map", "given_name=prenom"], ("id", "given_name"), "mapped column(s) not found: prenom"),
        ([], ("id", "colour"), "no column of a person field"),
        (["--threshold", "1.5"], ("id", "given_name"), "--threshold must be between 0 and 1"),
    ],
)
def test_bad_csv_input_is_refused_clearly(
    tmp_path: Path, args: list[str], header: tuple[str, ...], message: str
) -> None:
    source = tmp_path / "people.csv"
    with source.open("w", encoding="utf-8") as handle:
        handle.write(",".join(header) + "\n1,Ana\n")
    result = CliRunner().invoke(
        app, ["identity", "dedupe", str(source), "--out", str(tmp_path / "o.csv"), *args]
    )
    assert result.exit_code == 2 and message in result.output, result.output


def test_duplicate_or_empty_ids_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("id,given_name\n1,Ana\n1,Bea\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["identity", "dedupe", str(source), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "line 3: duplicate id '1'" in result.output
    source.write_text("id,given_name\n,Ana\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["identity", "dedupe", str(source), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "line 2: empty id" in result.output


def test_profiles_are_deduplicated_into_the_review_queue(sqlite_env: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    db = Database(sqlite_env)
    settings = Settings(database_url=sqlite_env, match_realtime=False)  # as if stored before matching
    source = make_source(db, "web", "web")
    messages = [
        {"type": "identify", "messageId": f"m{pid}", "userId": f"u{pid}" if pid in ("1", "3") else None,
         "anonymousId": f"a{pid}", "traits": {"firstName": given, "lastName": surname, "birthday": born,
                                               "address": {"street": street, "city": city, "postalCode": code}}}
        for pid, given, surname, born, street, city, code in PEOPLE
    ]  # fmt: skip
    ingest(db, settings, source, messages)
    result = runner.invoke(app, ["identity", "dedupe", "--profiles"])
    assert result.exit_code == 0, result.output
    with db.read() as session:
        assert session.get(InstanceSetting, MODEL_SETTING) is not None  # real time now uses this model
        pending = list_reviews(session, status="pending", limit=50)
    assert len(pending) >= 3 and all(item["evidence"] for item in pending)
    assert runner.invoke(app, ["identity", "dedupe", "--profiles"]).exit_code == 0
    with db.read() as session:  # pairs already queued are not queued twice
        assert len(list_reviews(session, status="pending", limit=50)) == len(pending)
    db.dispose()
