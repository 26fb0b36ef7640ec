"""What Segment's browser SDK (analytics.js) needs from a server that stands in for Segment.

- Its settings document, ``GET /v1/projects/{write_key}/settings``: analytics.js loaded with
  ``cdnURL`` set to this server reads from it where to send events (this server's tracking API), so a
  page's existing snippet only changes its host names.
- CORS on the tracking API, for pages on other origins than this server's: without an
  ``Access-Control-Allow-Origin`` the browser hides every answer from the SDK, which then takes each
  recorded event for a failure and keeps sending it again. Only the tracking paths answer browsers
  (the rest of the API and the console never do), for the origins ``tracking_allowed_origins`` names.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from parcours.auth import service as auth
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.deps import JsonResponse, database, public_base_url, settings
from parcours.ingest.endpoints import TRACKING_PATHS

router = APIRouter(tags=["tracking"])

SETTINGS_PATH = "/v1/projects/{write_key}/settings"
# A browser may keep a preflight's answer this long (Chromium keeps it at most two hours).
PREFLIGHT_SECONDS = 7200


def sdk_settings(write_key: str, api_url: str) -> dict[str, Any]:
    """The settings document of one write key: every call goes to the tracking API at ``api_url``
    (``https://host[:port][/prefix]/v1``), and nothing to Segment or to any other destination (no
    device-mode integrations, no remote plugins, no metrics)."""
    api = urlsplit(api_url)
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{api.netloc}{api.path}",
                "protocol": api.scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


@router.get(SETTINGS_PATH, summary="analytics.js settings of a write key")
def get_sdk_settings(
    write_key: str,
    request: Request,
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    with db.read() as session:
        auth.source_for_write_key(session, write_key)  # 401 for an unknown or disabled key
    document = sdk_settings(write_key, public_base_url(request, config) + "/v1")
    return JsonResponse(document, headers={"Cache-Control": "private, max-age=60"})


# The settings path as Starlette's router matches it (``/v1/projects/<any key>/settings``).
_SETTINGS_PATTERN = compile_path(SETTINGS_PATH)[0]


def is_tracking_path(path: str) -> bool:
    """A path of the tracking API or of the SDK's settings: the only ones a web page may call."""
    return path in TRACKING_PATHS or _SETTINGS_PATTERN.match(path) is not None


class TrackingCors:
    """CORS (Starlette's middleware) on the tracking paths only, for the origins the settings of the
    app serving the request allow: preflights answered, responses (errors included) readable by the page.
    Any other path goes on untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._by_origins: dict[tuple[str, ...], CORSMiddleware] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_tracking_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        config: Settings = scope["app"].state.settings
        await self._cors(config.tracking_origins)(scope, receive, send)

    def _cors(self, origins: tuple[str, ...]) -> CORSMiddleware:
        cors = self._by_origins.get(origins)
        if cors is None:
            cors = self._by_origins[origins] = CORSMiddleware(
                self.app,
                allow_origins=list(origins),
                allow_methods=["GET", "POST"],
                # analytics.js sends Content-Type text/plain, and in batches Authorization (Basic, the
                # write key) and X-Retry-Count; other SDKs Content-Encoding (gzip).
                allow_headers=["*"],
                allow_credentials=False,
                max_age=PREFLIGHT_SECONDS,
            )
        return cors
