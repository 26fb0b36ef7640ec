"""Segment's Node.js SDK (``@segment/analytics-node`` from npm, unchanged) talking to a live Parcours on
loopback: a store till's calls and a call centre's, in batches, land on one profile across two channels.

The SDK is installed by scripts/test.sh (``npm ci`` in tests/js); with CI=true this test must run,
elsewhere it skips with a reason when Node.js or the SDK is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.conftest import IN_CI, Api

SDKS = Path(__file__).parent / "js"
SCRIPT = SDKS / "send_with_analytics_node.js"


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    missing = None
    if found is None:
        missing = "Node.js is not installed (scripts/test.sh installs Debian's npm, which brings it)"
    elif not (SDKS / "node_modules" / "@segment" / "analytics-node").is_dir():
        missing = "@segment/analytics-node is missing: scripts/test.sh installs it (npm ci in tests/js)"
    if missing is not None:
        if IN_CI:
            pytest.fail(f"CI=true requires the SDK tests: {missing}")
        pytest.skip(missing)
    assert found is not None
    return found


def test_a_till_and_a_call_centre_land_on_one_profile(api: Api) -> None:
    executable = node()
    write_key = api.source("Caisses", "store")
    sent = subprocess.run(
        [executable, str(SCRIPT), api.url, write_key],
        cwd=SDKS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    report = orjson.loads(sent.stdout.strip().splitlines()[-1])
    assert report == {"answers": [200], "errors": []}, report  # three calls, one batch, no retry

    profile = api.get("/v1/profiles", identifier="loyalty_card:FID00429913").json()
    assert api.get("/v1/profiles", identifier="user_id:cust-3031").json()["id"] == profile["id"]
    assert profile["traits"]["firstName"] == "Inès"
    assert {c["channel"]: c["events"] for c in profile["channels"]} == {"store": 2, "phone": 1}
    events = api.get(f"/v1/profiles/{profile['id']}/timeline").json()["data"]
    assert [(e["channel"], e["type"], e["name"]) for e in events] == [
        ("store", "identify", None),
        ("store", "track", "Order Completed"),
        ("phone", "track", "Call Logged"),
    ]
    assert events[1]["properties"] == {"order_id": "T-7781", "total": 89.9, "currency": "EUR"}
