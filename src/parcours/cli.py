"""The ``parcours`` command. Commands call services directly, never over HTTP."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from parcours.config import Settings, get_settings
from parcours.db.engine import Database
from parcours.db.migrate import upgrade
from parcours.errors import InvalidInput, NotFound, ParcoursError

app = typer.Typer(help="Parcours: one customer, one history, every channel.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
source_app = typer.Typer(help="Event sources and their write keys.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for reading profiles.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents of the customer-service inbox.", no_args_is_help=True)
identity_app = typer.Typer(help="Identifier kinds, merge rules, merge and unmerge.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(source_app, name="source")
app.add_typer(token_app, name="token")
app.add_typer(identity_app, name="identity")
app.add_typer(agent_app, name="agent")
catalogue_app = typer.Typer(
    help="Offers: the source of truth, and the audit of channel feeds.", no_args_is_help=True
)
app.add_typer(catalogue_app, name="catalogue")
user_app = typer.Typer(
    help="Console users: who signs in to the web console, with which role.", no_args_is_help=True
)
app.add_typer(user_app, name="user")


def _database(settings: Settings) -> Database:
    return Database(settings.sqlalchemy_url)


def _fail(error: ParcoursError) -> NoReturn:
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(code=2)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the schema migrations (safe to run on every start)."""
    settings = get_settings()
    database = _database(settings)
    upgrade(database.engine, revision)
    typer.echo(f"database at {database.engine.url.render_as_string(hide_password=True)} is at {revision}")


def _serve(settings: Settings, database: Database, host: str, port: int, *, announce: str = "") -> None:
    """Serve the app (and the SMTP server); ``announce`` is printed once the SMTP server listens."""
    import uvicorn

    from parcours.app import create_app
    from parcours.channels.email import start_smtp_server
    from parcours.logs import configure_logging

    configure_logging(settings.log_level)
    application = create_app(settings, database)
    try:  # the e-mail channel's SMTP server, beside the HTTP server and stopped with it
        smtp = start_smtp_server(settings, database, writer=application.state.inbox_writer)
    except OSError as error:
        _fail(InvalidInput(f"SMTP server: {error} (PARCOURS_EMAIL_SMTP_PORT=0 turns it off)"))
    if smtp is not None:
        typer.echo(f"SMTP server for {settings.email_inbox_domains or settings.inbox_email_domain} "
                   f"on {smtp.host}:{smtp.port}")  # fmt: skip
    if announce:
        typer.echo(announce)
    try:
        # Open live streams (the console's Server-Sent Events, web chat sockets) get 5 seconds to end
        # at shutdown before they are cut. WebSocket frames (live feeds, web chat) are small JSON
        # messages: per-message deflate would cost CPU on every frame and keep zlib state on every
        # socket for a few bytes saved (bench/_common.run_server starts uvicorn the same way).
        uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False,
                    ws_per_message_deflate=False, timeout_graceful_shutdown=5)  # fmt: skip
    finally:
        if smtp is not None:
            smtp.stop()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Migrate the database, then serve the API."""
    settings = get_settings()
    database = _database(settings)
    upgrade(database.engine)
    _serve(
        settings,
        database,
        host,
        port,
        announce=f"Parcours listening on http://{host}:{port} (API docs at /docs)",
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    customers: Annotated[int, typer.Option(help="How many customers to generate.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same population.")] = 7,
    database_file: Annotated[Path, typer.Option(help="SQLite file for the demo; recreated.")] = Path(
        "parcours-demo.db"
    ),
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Populate, print, and stop.")] = False,
) -> None:
    """Create a fresh demo database with a generated retailer's customers, then serve it."""
    from parcours.demo.generator import populate

    for suffix in ("", "-wal", "-shm"):
        Path(f"{database_file}{suffix}").unlink(missing_ok=True)
    settings = get_settings().model_copy(update={"database_url": f"sqlite:///{database_file.resolve()}"})
    database = _database(settings)
    upgrade(database.engine)
    typer.echo(f"Generating {customers} customers into {database_file} …")
    info = populate(database, settings, customers=customers, seed=seed)
    base = f"http://{host}:{port}"
    typer.echo(info.summary(base))
    if not no_serve:
        _serve(settings, database, host, port)


@source_app.command("create")
def source_create(
    name: str,
    channel: Annotated[
        str, typer.Option(help="Default channel of this source's events (web, app, store, …).")
    ],
) -> None:
    """Create a source; prints its write key alone on the last line."""
    from parcours.auth.service import create_source

    settings = get_settings()
    database = _database(settings)
    upgrade(database.engine)
    try:
        with database.write() as session:
            source, write_key = create_source(session, name, channel)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"source {source.name} ({source.id}), default channel {source.channel}; write key:")
    typer.echo(write_key)


@source_app.command("list")
def source_list() -> None:
    """List sources (write keys are never shown again)."""
    from parcours.auth.service import list_sources

    database = _database(get_settings())
    with database.read() as session:
        for source in list_sources(session):
            typer.echo(f"{source.id}\t{source.name}\t{source.channel}")


@source_app.command("activity")
def source_activity(
    name: str,
    days: int = typer.Option(7, help="The days to show (UTC), today first."),
) -> None:
    """What a source sent per day and its latest refused events, with the reason."""
    from sqlalchemy import select

    from parcours.ingest.activity import COUNTS
    from parcours.ingest.activity import source_activity as activity_of
    from parcours.models import Source

    try:
        with _database(get_settings()).read() as session:
            source_id = session.scalar(select(Source.id).where(Source.name == name))
            if source_id is None:
                raise NotFound(f"no source named {name!r}")
            found = activity_of(session, source_id, days=days)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"source {name} ({found['source']['id']}); last event: {found['last_received_at'] or 'never'}")
    typer.echo("\t".join(("day (UTC)", *COUNTS)))
    for day in found["days"]:
        counts = (day[k] for k in COUNTS)
        typer.echo("\t".join((day["day"], *map(str, counts))))
    typer.echo(f"latest refused events: {len(found['rejections'])}")
    for refused in found["rejections"]:
        position = refused["position"]
        where = f"/v1/{refused['endpoint']}" + (
            " (the whole request)"
            if position is None
            else f"[{position}]"
            if refused["endpoint"] == "batch"
            else ""
        )
        typer.echo(f"{refused['received_at']}\t{where}\t{refused['message_id'] or '-'}\t{refused['error']}")


@source_app.command("disable")
def source_disable(name: str) -> None:
    """Refuse a source's write key from now on (its events stay)."""
    from parcours.auth.service import disable_source

    try:
        with _database(get_settings()).write() as session:
            disable_source(session, name)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"source {name} disabled: its write key is refused")


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Stop an API token working (running servers stop accepting it within 10 seconds)."""
    from parcours.auth.service import revoke_token

    try:
        with _database(get_settings()).write() as session:
            revoke_token(session, name)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"API token {name} revoked")


@token_app.command("create")
def token_create(name: str) -> None:
    """Create an API token; prints it alone on the last line."""
    from parcours.auth.service import create_token

    settings = get_settings()
    database = _database(settings)
    upgrade(database.engine)
    try:
        with database.write() as session:
            token = create_token(session, name)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"API token {name} (send as Authorization: Bearer …):")
    typer.echo(token)


@identity_app.command("kinds")
def identity_kinds() -> None:
    """Show identifier kinds and their merge rules."""
    from parcours.identity.service import list_kinds

    with _database(get_settings()).read() as session:
        for kind in list_kinds(session):
            typer.echo(json.dumps(kind))


@identity_app.command("kind-add")
def identity_kind_add(
    name: str,
    priority: Annotated[int, typer.Option(help="Lower wins when identifiers point at different profiles.")],
    max_per_profile: Annotated[int, typer.Option(help="How many of this kind one profile may hold.")] = 5,
    normalizer: Annotated[str, typer.Option(help="email, phone, text, lower, compact or handle.")] = "text",
    blocked: Annotated[list[str] | None, typer.Option(help="A value never used to link profiles.")] = None,
    blocked_pattern: Annotated[
        list[str] | None, typer.Option(help="A regular expression of blocked values.")
    ] = None,
) -> None:
    """Register a new identifier kind (a business's own id)."""
    from parcours.identity.service import add_kind

    try:
        with _database(get_settings()).write() as session:
            kind = add_kind(
                session,
                name=name,
                priority=priority,
                max_per_profile=max_per_profile,
                normalizer=normalizer,
                blocked_values=blocked or [],
                blocked_patterns=blocked_pattern or [],
            )
    except ParcoursError as error:
        _fail(error)
    typer.echo(json.dumps(kind))


@identity_app.command("kind-set")
def identity_kind_set(
    name: str,
    priority: Annotated[int | None, typer.Option()] = None,
    max_per_profile: Annotated[int | None, typer.Option()] = None,
    blocked: Annotated[list[str] | None, typer.Option(help="Replace the blocked values.")] = None,
    blocked_pattern: Annotated[list[str] | None, typer.Option(help="Replace the blocked patterns.")] = None,
) -> None:
    """Change a kind's merge rules (priority, limit, blocked values or patterns)."""
    from parcours.identity.service import update_kind

    try:
        with _database(get_settings()).write() as session:
            kind = update_kind(
                session,
                name,
                priority=priority,
                max_per_profile=max_per_profile,
                blocked_values=blocked,
                blocked_patterns=blocked_pattern,
            )
    except ParcoursError as error:
        _fail(error)
    typer.echo(json.dumps(kind))


@identity_app.command("merge")
def identity_merge(
    profile_id: str,
    other: Annotated[str, typer.Argument(help="The other profile: its id, or an identifier as KIND:VALUE.")],
    reason: Annotated[str | None, typer.Option(help="Why: kept in the merge record.")] = None,
) -> None:
    """Merge two profiles that are one customer (recorded, reversible with unmerge; the older survives)."""
    from parcours.identity import service

    settings = get_settings()
    by_id = other.startswith("prf_")
    try:
        with _database(settings).write() as session:
            other_id = service.named_profile(
                session,
                settings.default_phone_region,
                profile_id=other if by_id else None,
                identifier=None if by_id else other,
            )
            if other_id is None:
                raise InvalidInput(
                    "OTHER: give the other profile's id or one of its identifiers as KIND:VALUE"
                )
            registry = service.load_registry(session, settings.default_phone_region)
            done = service.merge_customers(
                session, registry, profile_id, other_id, actor="the command line", reason=reason
            )
    except ParcoursError as error:
        _fail(error)
    survivor = done["survivor"]["id"]
    typer.echo(f"merged {done['merged_id']} into {survivor} (merge {done['merge_id']}; unmerge undoes it)")


@identity_app.command("unmerge")
def identity_unmerge(
    profile_id: str, merge_id: Annotated[str | None, typer.Option(help="Which merge, if several.")] = None
) -> None:
    """Undo a merge: the merged profile comes back as it was."""
    from parcours.identity.service import unmerge

    try:
        with _database(get_settings()).write() as session:
            merge = unmerge(session, profile_id, merge_id)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"undid merge {merge.id}: {merge.merged_id} is separate from {merge.survivor_id} again")


@identity_app.command("dedupe")
def identity_dedupe(
    file: Annotated[Path | None, typer.Argument(help="CSV file of people (one header row).")] = None,
    id_column: Annotated[str, typer.Option(help="The CSV column that identifies a row.")] = "id",
    out: Annotated[Path | None, typer.Option(help="Where to write record_id,cluster_id.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN for columns not named like the fields (repeatable)."),
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Match probability that links a pair.")] = None,
    profiles: Annotated[
        bool, typer.Option("--profiles", help="Deduplicate the database's profiles into the review queue.")
    ] = False,
) -> None:
    """Find the same people without a shared identifier: in a CSV file, or among the profiles.

    Fields: given_name, surname, birth_date, street, locality, postcode, phone, email, national_id."""
    from parcours.matching.batch import CsvProblem, dedupe_profiles, parse_map, read_people, write_clusters
    from parcours.matching.linkage import link_records

    if threshold is not None and not 0 < threshold < 1:
        _fail(InvalidInput("--threshold must be between 0 and 1"))
    with typer.progressbar(length=1, label="comparing pairs", file=sys.stderr) as bar:

        def progress(_stage: str, done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        if profiles:
            if file is not None or out is not None:
                _fail(InvalidInput("--profiles takes no FILE and no --out"))
            settings = get_settings()
            with _database(settings).write() as session:
                linkage, added = dedupe_profiles(
                    session, review_threshold=threshold or settings.match_review_threshold, progress=progress
                )
            typer.echo(f"{len(linkage.clusters)} profiles compared in {len(linkage.pairs)} pairs; "
                       f"{added} new pairs queued for review", err=True)  # fmt: skip
            return
        if file is None or out is None:
            _fail(InvalidInput("give a CSV FILE and --out (or --profiles)"))
        try:
            records = read_people(file, id_column, parse_map(map_ or []))
        except (CsvProblem, OSError, UnicodeDecodeError) as error:
            _fail(InvalidInput(str(error)))
        linkage = link_records(records, threshold=threshold, progress=progress)
    write_clusters(out, linkage, [record.id for record in records])
    clusters = len(set(linkage.clusters.values()))
    typer.echo(f"{len(records)} records -> {clusters} people ({len(linkage.pairs)} pairs compared); wrote {out}",
               err=True)  # fmt: skip


@agent_app.command("create")
def agent_create(
    name: str,
    role: Annotated[str, typer.Option(help="agent, supervisor or admin")] = "agent",
    email: Annotated[str | None, typer.Option(help="The agent's e-mail address.")] = None,
    language: Annotated[
        list[str] | None, typer.Option(help="A language the agent answers in (repeatable).")
    ] = None,
    skill: Annotated[list[str] | None, typer.Option(help="A skill used by routing (repeatable).")] = None,
) -> None:
    """Create an agent; prints the agent's token alone on the last line (shown once)."""
    from parcours.inbox.agents import create_agent

    try:
        with _database(get_settings()).write() as session:
            agent, token = create_agent(
                session, name, role=role, email=email, languages=language, skills=skill
            )
            agent_id = agent.id
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"agent {name!r} ({role}) created: {agent_id}; its token (shown once):", err=True)
    typer.echo(token)


@catalogue_app.command("offer")
def catalogue_offer(
    sku: str,
    channel: Annotated[str | None, typer.Option(help="The channel asking (none: the common offer).")] = None,
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "EUR",
    member: Annotated[bool, typer.Option("--member", help="A loyalty member.")] = False,
    postcode: Annotated[str | None, typer.Option(help="For the delivery zone.")] = None,
) -> None:
    """Print the offer of SKU on a channel (JSON; amounts as strings)."""
    from parcours.commerce.offers import jsonable, offer
    from parcours.db.types import utcnow

    try:
        with _database(get_settings()).read() as session:
            result = offer(
                session,
                sku,
                channel=channel,
                currency=currency,
                member=member,
                postcode=postcode,
                now=utcnow(),
            )
    except ParcoursError as error:
        _fail(error)
    typer.echo(json.dumps(jsonable(result), indent=2, default=str, ensure_ascii=False))


@catalogue_app.command("audit")
def catalogue_audit(
    file: Annotated[Path, typer.Argument(help="The channel's feed: CSV with a header, or JSON.")],
    channel: Annotated[str, typer.Option(help="The channel whose feed this is.")],
    currency: Annotated[str, typer.Option(help="For rows naming none, and the missing-SKU check.")] = "EUR",
    postcode: Annotated[str | None, typer.Option(help="Delivery zone to compare with.")] = None,
    delivery_method: Annotated[
        str, typer.Option(help="home, click_collect, relay, ship_from_store")
    ] = "home",
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="FIELD=COLUMN, e.g. price=prix (repeatable).")
    ] = None,
    check_missing: Annotated[bool, typer.Option(help="List SKUs on sale but absent from the feed.")] = True,
) -> None:
    """List every divergence of a channel's feed from the source of truth (JSON); exit 1 if any."""
    from parcours.commerce.audit import audit_feed
    from parcours.commerce.offers import jsonable
    from parcours.db.types import utcnow

    mapping: dict[str, str] = {}
    for item in map_ or []:
        name, sep, column = item.partition("=")
        if not sep:
            _fail(InvalidInput(f"--map: expected FIELD=COLUMN, got {item!r}"))
        mapping[name.strip().lower()] = column.strip()
    try:
        data = file.read_bytes()
        fmt = "json" if file.suffix.lower() == ".json" else "csv" if file.suffix.lower() == ".csv" else None
        with _database(get_settings()).read() as session:
            report = audit_feed(
                session,
                data,
                channel=channel,
                now=utcnow(),
                format=fmt,
                mapping=mapping,
                currency=currency,
                postcode=postcode,
                delivery_method=delivery_method,
                check_missing=check_missing,
            )
    except OSError as error:
        _fail(InvalidInput(f"{file}: {error.strerror}"))
    except ParcoursError as error:
        if isinstance(error.details, list):
            for line in error.details:
                typer.echo(f"  {line}", err=True)
        _fail(error)
    typer.echo(json.dumps(jsonable(report), indent=2, default=str, ensure_ascii=False))
    if report["divergences"]:
        raise typer.Exit(code=1)


@user_app.command("add")
def user_add(
    email: str,
    name: Annotated[str, typer.Option(help="The person's name, shown in the console.")],
    role: Annotated[str, typer.Option(help="agent, supervisor, store_associate, marketer or admin")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="PARCOURS_NEW_USER_PASSWORD",
            help="At least 10 characters; asked for when not given (or read from PARCOURS_NEW_USER_PASSWORD).",
        ),
    ],
    locale: Annotated[str, typer.Option(help="Language of the console: en or fr.")] = "en",
    store: Annotated[str | None, typer.Option(help="Location id of a store associate's store.")] = None,
) -> None:
    """Add a console user (argon2-hashed password). Agents, supervisors and admins also answer in the inbox."""
    from parcours.auth.users import create_user

    try:
        with _database(get_settings()).write() as session:
            user = create_user(
                session, email, password, name=name, role=role, locale=locale, location_id=store
            )
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"user {user.email} ({user.role}) added: {user.id}")


@user_app.command("list")
def user_list() -> None:
    """Every console user: e-mail, name, role, language, and whether they may sign in."""
    from parcours.auth.users import list_users

    with _database(get_settings()).read() as session:
        for user in list_users(session):
            state = "disabled" if user.disabled_at is not None else "active"
            typer.echo(f"{user.email}\t{user.name}\t{user.role}\t{user.locale}\t{state}")


def _user_id(session: object, email: str) -> str:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from parcours.auth.users import check_email
    from parcours.errors import NotFound
    from parcours.models import User

    assert isinstance(session, Session)
    user_id = session.scalar(select(User.id).where(User.email == check_email(email)))
    if user_id is None:
        raise NotFound(f"no user with e-mail {email}")
    return user_id


@user_app.command("disable")
def user_disable(email: str) -> None:
    """Stop a user from signing in; their open sessions end at once."""
    from parcours.auth.users import update_user

    try:
        with _database(get_settings()).write() as session:
            update_user(session, _user_id(session, email), disabled=True)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"user {email} disabled")


@user_app.command("set-password")
def user_set_password(
    email: str,
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="PARCOURS_NEW_USER_PASSWORD"
        ),
    ],
) -> None:
    """Give a user a new password (their open sessions end)."""
    from parcours.auth.users import set_password

    try:
        with _database(get_settings()).write() as session:
            set_password(session, _user_id(session, email), password)
    except ParcoursError as error:
        _fail(error)
    typer.echo(f"password of {email} changed")


def main() -> None:
    """The `parcours` command. The settings are read by the first command that needs them, so `--help`
    works whatever they hold; a PARCOURS_ setting a command cannot run with is named, with why, and the
    command stops (exit 2) before it changes anything."""
    try:
        app()
    except ValidationError as error:
        if error.title != Settings.__name__:  # a bug elsewhere: let it show as one
            raise
        for problem in error.errors():
            name = "PARCOURS_" + "_".join(str(part) for part in problem["loc"]).upper()
            typer.echo(f"error: {name}: {problem['msg'].removeprefix('Value error, ')}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
