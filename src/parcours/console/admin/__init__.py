"""Console pages: the admin area, one module per section: ``index``, ``sources`` (sources and write keys,
API tokens), ``channels``, ``teams`` (teams and agents), ``users``, ``merge_rules`` (identifier kinds,
matching thresholds), ``knowledge`` (the knowledge base). Every page needs the "admin" permission; every
action is a CSRF-checked POST that validates the whole form before writing, writes in one transaction and
redirects with a message. A form the domain refuses is shown again with the domain's message beside it
and the values typed kept (``common.attempt``)."""

from __future__ import annotations

from fastapi import APIRouter

from parcours.console.admin import channels, index, knowledge, merge_rules, sources, teams, users
from parcours.routing import add_routes

router = APIRouter(include_in_schema=False)
for module in (index, sources, channels, teams, users, merge_rules, knowledge):
    add_routes(router, module.router)
