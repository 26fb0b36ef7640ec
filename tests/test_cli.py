"""The `parcours` command: migrations, sources, tokens, kinds, and `serve` as a real process."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from parcours.cli import app
from parcours.config import get_settings
from tests.conftest import free_port


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PARCOURS_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_source_and_token_print_their_secret_alone_on_the_last_line(sqlite_env: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["source", "create", "Boutique en ligne", "--channel", "web"])
    assert result.exit_code == 0, result.output
    write_key = result.output.strip().splitlines()[-1]
    assert write_key.startswith("wk_") and " " not in write_key
    result = runner.invoke(app, ["token", "create", "back-office"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("pat_")
    listed = runner.invoke(app, ["source", "list"])
    assert "Boutique en ligne\tweb" in listed.output


def test_source_activity_shows_the_days_and_the_refused_events(sqlite_env: str) -> None:
    from sqlalchemy import select

    from parcours.db.engine import Database
    from parcours.db.types import utcnow
    from parcours.ingest.activity import RequestActivity, record_activity
    from parcours.models import Source

    runner = CliRunner()
    assert runner.invoke(app, ["source", "create", "web", "--channel", "web"]).exit_code == 0
    database = Database(sqlite_env)
    with database.write() as session:
        source_id = session.scalar(select(Source.id).where(Source.name == "web"))
        assert source_id is not None
        refused = {"position": 1, "message_id": "m-2", "type": "track", "error": "event: is required"}
        record_activity(session, [RequestActivity(source_id, "batch", utcnow(), 2, [refused], recorded=1)])
    result = runner.invoke(app, ["source", "activity", "web", "--days", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"source web ({source_id}); last event: 20")
    assert lines[1] == "day (UTC)\treceived\trecorded\tduplicates\terased\tinvalid\trefused_requests"
    assert lines[2] == f"{utcnow().date().isoformat()}\t2\t1\t0\t0\t1\t0"
    assert lines[3].endswith("\t0\t0\t0\t0\t0\t0")
    assert lines[4] == "latest refused events: 1"
    assert lines[5].endswith("\t/v1/batch[1]\tm-2\tevent: is required")
    missing = runner.invoke(app, ["source", "activity", "nope"])
    assert missing.exit_code == 2 and "no source named 'nope'" in missing.output
    bad = runner.invoke(app, ["source", "activity", "web", "--days", "0"])
    assert bad.exit_code == 2 and "days: must be between 1 and 90" in bad.output


def test_cli_refuses_bad_input_clearly(sqlite_env: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["source", "create", "x", "--channel", "fax"])
    assert result.exit_code == 2 and "unknown channel 'fax'" in result.output
    runner.invoke(app, ["source", "create", "dup", "--channel", "web"])
    result = runner.invoke(app, ["source", "create", "dup", "--channel", "web"])
    assert result.exit_code == 2 and "already exists" in result.output
    result = runner.invoke(app, ["identity", "kind-add", "Bad Name", "--priority", "5"])
    assert result.exit_code == 2 and "name:" in result.output
    result = runner.invoke(
        app, ["identity", "kind-add", "crm_id", "--priority", "5", "--blocked-pattern", "("]
    )
    assert result.exit_code == 2 and "blocked_patterns" in result.output


def test_kinds_can_be_added_and_changed(sqlite_env: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(
        app, ["identity", "kind-add", "crm_id", "--priority", "15", "--max-per-profile", "1"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["identity", "kind-set", "anonymous_id", "--blocked", "tablet-lyon-1"])
    assert result.exit_code == 0 and "tablet-lyon-1" in result.output
    kinds = runner.invoke(app, ["identity", "kinds"]).output
    assert '"name": "crm_id"' in kinds


def test_two_profiles_are_merged_and_unmerged_from_the_command_line(sqlite_env: str) -> None:
    from parcours.db.engine import Database
    from parcours.identity import service
    from tests.helpers import ingest, make_source, profile_of

    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    settings = get_settings()
    db = Database(settings.sqlalchemy_url)
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [{"type": "track", "event": "A", "messageId": "a", "anonymousId": "d-1"},
                               {"type": "track", "event": "B", "messageId": "b", "userId": "u-1",
                                "context": {"traits": {"phone": "06 12 34 56 78"}}},
                               {"type": "track", "event": "C", "messageId": "c", "userId": "u-2"}])  # fmt: skip
    first = profile_of(db, settings, "anonymous_id", "d-1")
    result = runner.invoke(
        app, ["identity", "merge", first, "phone:06 12 34 56 78", "--reason", "same person"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("merged prf_") and f"into {first}" in result.output
    with db.read() as session:
        assert service.resolve_profile_id(session, profile_of(db, settings, "user_id", "u-1")) == first
    refused = runner.invoke(app, ["identity", "merge", first, "user_id:u-2"])
    assert refused.exit_code != 0 and "different user_id identifiers" in refused.output
    empty = runner.invoke(app, ["identity", "merge", first, ""])
    assert empty.exit_code != 0 and "OTHER: give the other profile's id" in empty.output
    unknown = runner.invoke(app, ["identity", "merge", first, "prf_nope"])
    assert unknown.exit_code != 0 and "profile prf_nope not found" in unknown.output
    undone = runner.invoke(app, ["identity", "unmerge", first])
    assert undone.exit_code == 0 and "is separate from" in undone.output
    db.dispose()


def test_serve_migrates_and_answers(tmp_path: Path) -> None:
    port, smtp_port = free_port(), free_port()
    env = {
        **os.environ,
        "PARCOURS_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "PARCOURS_EMAIL_SMTP_PORT": str(smtp_port),  # never the default 2525, which may be taken
        "PARCOURS_EMAIL_ATTACHMENTS_DIR": str(tmp_path / "attachments"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "parcours.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("parcours serve did not start") from None
                time.sleep(0.1)
        assert response.json()["status"] == "ok"
        unauthenticated = httpx.post(f"http://127.0.0.1:{port}/v1/track", json={"event": "x", "userId": "u"})
        assert unauthenticated.status_code == 401
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:  # the e-mail channel listens too
            assert smtp.noop()[0] == 250
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_tokens_can_be_revoked_and_sources_disabled(sqlite_env: str) -> None:
    from parcours.auth.service import check_token, source_for_write_key
    from parcours.db.engine import Database
    from parcours.errors import NotAuthenticated

    runner = CliRunner()
    write_key = (
        runner.invoke(app, ["source", "create", "tills", "--channel", "store"])
        .output.strip()
        .splitlines()[-1]
    )
    token = runner.invoke(app, ["token", "create", "bo"]).output.strip().splitlines()[-1]
    assert runner.invoke(app, ["token", "revoke", "bo"]).exit_code == 0
    assert runner.invoke(app, ["source", "disable", "tills"]).exit_code == 0
    database = Database(sqlite_env)
    with database.read() as session:
        with pytest.raises(NotAuthenticated):
            check_token(session, token)
        with pytest.raises(NotAuthenticated):
            source_for_write_key(session, write_key)
    again = runner.invoke(app, ["token", "revoke", "bo"])
    assert again.exit_code == 2 and "no active API token named 'bo'" in again.output
    assert "tills" not in runner.invoke(app, ["source", "list"]).output


def test_a_setting_the_server_cannot_run_with_is_named_and_nothing_starts(
    sqlite_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from parcours.cli import main

    monkeypatch.setenv("PARCOURS_TRACKING_ALLOWED_ORIGINS", "https://shop.example.fr/vestes")
    monkeypatch.setenv("PARCOURS_DEFAULT_PHONE_REGION", "France")
    monkeypatch.setattr(sys, "argv", ["parcours", "db", "upgrade"])
    get_settings.cache_clear()
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: PARCOURS_DEFAULT_PHONE_REGION: must be a two-letter ISO 3166 region code such as FR",
        "error: PARCOURS_TRACKING_ALLOWED_ORIGINS: 'https://shop.example.fr/vestes' is not a web origin; "
        "write scheme://host[:port] with nothing after it, such as https://shop.example.fr",
    ]
    assert not Path(sqlite_env.removeprefix("sqlite:///")).exists()  # no database was made

    # Help needs no settings: it is what someone with a bad setting reads next.
    for argv in (["parcours", "--help"], ["parcours", "db", "--help"]):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 0
        shown = capsys.readouterr()
        assert "Usage:" in shown.out and "Options" in shown.out and shown.err == ""
    assert not Path(sqlite_env.removeprefix("sqlite:///")).exists()
