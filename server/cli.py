"""The `balie` command: serve, migrate, keys, audit, and dossier commands for operators.

Every command builds its resources from the same `Settings` as the server, runs one service
call and disposes of what it opened. Operator actions are audited as `operator:<name>`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import click
from aiohttp import web

from dossier.appointments import BookedAppointment, cancel_appointment, create_appointment
from dossier.chat import ChatEntry, append_chat_message, list_chat_messages
from dossier.crypto.keyring import kek_id_for
from dossier.documents import DocumentInfo, list_documents, open_document, store_document
from dossier.export.errors import ExportConfigError, PackageInvalid
from dossier.export.signing import (
    export_key_path,
    key_fingerprint,
    load_export_key,
    load_public_key_pem,
    public_key_pem,
)
from dossier.export.verify import verify_package
from dossier.models import Tombstone, TombstoneOutcome
from dossier.shredding import destroy_dossier
from identity.accounts import (
    NewCredentials,
    add_local_account,
    current_totp_code,
    reset_local_account,
)
from identity.pseudonym import bsn_pseudonym
from identity.roles import STAFF_ROLES
from retention.audit import Actor
from retention.audit_verify import AuditReport
from retention.checkpoints import CheckpointError, key_id_of, load_checkpoint_key
from retention.key_destruction import key_statuses
from retention.models import AuditCheckpoint
from retention.policy_versions import ensure_policy_in_force, policy_of
from server.app import LINGERING_SECONDS, create_app
from server.audit_routes import checkpoint_now, verify_and_record
from server.cli_policy import policy_group
from server.cli_retention import retention_group
from server.cli_support import Resources as _Resources
from server.cli_support import load_settings as _settings
from server.cli_support import operator_of as _operator
from server.cli_support import run as _run
from server.demo import DEMO_CLERK, seed_demo
from server.migrate import current_revision, head_revision
from server.settings import Settings

__all__ = ["main"]

# Young-generation allocations between collections (Python's default: 700). Relaying builds
# many short-lived dicts; collecting them less often costs a little memory, not latency.
GC_YOUNG_THRESHOLD = 10_000


@click.group()
@click.option("--operator", default="cli", help="Name recorded in the audit log for this action.")
def main(operator: str) -> None:
    """Balie, the digital counter: operator commands."""


@main.command()
@click.option("--host", default=None, help="Bind address (default from BALIE_HOST).")
@click.option("--port", type=int, default=None, help="Port (default from BALIE_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the web server (migrates to head first)."""
    settings = _settings()
    app = create_app(settings)
    app.on_startup.append(_settle_garbage_collector)
    web.run_app(
        app,
        host=host or settings.host,
        port=port or settings.port,
        lingering_time=LINGERING_SECONDS,
    )


async def _settle_garbage_collector(app: web.Application) -> None:
    """After start-up: move what start-up built (modules, templates, the SQLAlchemy and
    pydantic machinery) out of the collector's sight, and collect the young generation less
    often. A full collection then walks only what requests create, so signaling relays do not
    stall for 100+ ms under load (measured with tests/bench/bench_signaling.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def demo(host: str | None, port: int | None) -> None:
    """Seed demo departments, services, appointments and a clerk, then serve; prints links."""
    settings = _settings()
    if not settings.is_development:
        raise click.ClickException("the demo runs only with BALIE_ENVIRONMENT=dev or test")
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )

    async def seed(res: _Resources) -> list[str]:
        # The policy in force first (the file, adopted on a fresh database), so that the
        # sample appointments record its version, as the server would.
        at_start = await ensure_policy_in_force(
            res.store.sessions,
            res.store.clock,
            policy_file=res.settings.policy_file,
            actor=Actor.system("demo"),
        )
        return await seed_demo(
            res.store,
            actor=Actor.system("demo"),
            public_origin=res.settings.public_origin,
            secret_key=res.settings.secret_key.get_secret_value().encode(),
            policy=policy_of(at_start.row),
        )

    lines = _run(seed, settings=settings)
    base = settings.public_origin
    click.echo("Balie demo")
    click.echo(f"  data directory : {settings.data_dir.resolve()}")
    click.echo(f"  liveness       : {base}/healthz")
    click.echo(f"  readiness      : {base}/readyz")
    click.echo("  DigiD test IdP : any BSN that passes the eleven-test, e.g. 999993653")
    click.echo(f"  staff sign-in  : {base}/balie/inloggen (code: .venv/bin/balie user code USER)")
    click.echo(f"  clerk console  : {base}/balie (user {DEMO_CLERK})")
    click.echo(f"  oversight      : {base}/beheer (users informatiebeheer, privacy)")
    click.echo("  sample appointments and staff sign-in:")
    for line in lines:
        click.echo(f"    {line}")
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda text: click.echo(text),
        lingering_time=LINGERING_SECONDS,
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema to the newest migration."""

    async def work(res: _Resources) -> str | None:
        return await current_revision(res.engine)

    click.echo(f"database at {_run(work, migrate=True)}")


@db.command("current")
def db_current() -> None:
    """Show the schema's migration and the newest one available."""

    async def work(res: _Resources) -> str | None:
        return await current_revision(res.engine)

    current = _run(work, migrate=False)
    click.echo(f"current: {current or 'empty database'}; head: {head_revision()}")


@main.group()
def keys() -> None:
    """Key-encryption keys (one per calendar month)."""


@keys.command("status")
def keys_status() -> None:
    """List KEKs and how many dossiers each still protects; exit 1 if one in use is missing."""

    async def work(res: _Resources) -> list[str]:
        now = await res.store.now()
        grace = res.settings.key_destruction_grace_days
        statuses = await key_statuses(res.store, grace_days=grace)
        present = {info.key_id for info in res.store.keyring.list_keys()}
        current = kek_id_for(now)
        state = "present" if current in present else "missing"
        lines = [f"current month's key: {current} ({state})"]
        for key in statuses:
            if key.key_id in present:
                state = "present"
            elif key.destroyed is not None:
                state = "destroyed"
            else:
                state = "MISSING" if key.data_keys else "absent"
            lines.append(
                f"{key.key_id}  {state:8}  wraps {key.data_keys} dossier key(s); {key.describe()}"
            )
        missing = sorted(k.key_id for k in statuses if k.data_keys and k.key_id not in present)
        if missing:
            lines.append(f"error: keys in use but missing from the keyring: {', '.join(missing)}")
        return lines

    settings = _settings()
    lines = _run(work, settings=settings) + _export_key_lines(settings)
    for line in lines:
        click.echo(line)
    if any(line.startswith("error:") for line in lines):
        sys.exit(1)


def _export_key_lines(settings: Settings) -> list[str]:
    """The export signing key's public half and fingerprint, for archives to verify packages.

    Made on demand in dev/test like the KEKs; in production a missing key is an error line.
    """
    path = export_key_path(settings.resolved_key_dir)
    try:
        key = load_export_key(settings.resolved_key_dir, create=settings.is_development)
    except ExportConfigError as exc:
        return [f"export signing key: {path} (missing or unusable)", f"error: {exc}"]
    return [
        f"export signing key: {path} (present)",
        f"export public key fingerprint (SHA-256): {key_fingerprint(key.public_key())}",
        *public_key_pem(key).splitlines(),
    ]


@keys.command("create-export-key")
def keys_create_export_key() -> None:
    """Create the export signing key unless it exists (in production, before the first export)."""
    settings = _settings()
    path = export_key_path(settings.resolved_key_dir)
    existed = path.exists()
    try:
        key = load_export_key(settings.resolved_key_dir, create=True)
    except ExportConfigError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None
    click.echo(f"{path}: {'exists' if existed else 'created'}")
    click.echo(f"export public key fingerprint (SHA-256): {key_fingerprint(key.public_key())}")


@keys.command("create")
@click.option("--month", default=None, help="YYYYMM; default the current and the next month.")
def keys_create(month: str | None) -> None:
    """Create KEKs ahead of time (required in production, where none are made on demand)."""

    async def work(res: _Resources) -> list[str]:
        async with res.store.sessions() as session:
            now = await res.store.clock.now(session)
        if month is not None:
            ids = [f"kek-{month}"]
        else:
            next_month = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
            ids = [kek_id_for(now), kek_id_for(next_month)]
        return [f"{k}: {'created' if res.store.keyring.create(k) else 'exists'}" for k in ids]

    for line in _run(work):
        click.echo(line)


@main.group("export")
def export_group() -> None:
    """Export packages (DESIGN section 6)."""


@export_group.command("verify")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM file of the signer's public key (default: this installation's export key).",
)
def export_verify(package: Path, public_key_file: Path | None) -> None:
    """Check a package's signature, checksums, MDTO metadata and completeness (exit 1 if bad)."""
    try:
        if public_key_file is not None:
            public_key = load_public_key_pem(
                public_key_file.read_bytes(), source=str(public_key_file)
            )
        else:
            # Never created here: a key made now cannot have signed the package.
            settings = _settings()
            public_key = load_export_key(settings.resolved_key_dir, create=False).public_key()
    except ExportConfigError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None
    try:
        report = verify_package(package, public_key)
    except PackageInvalid as exc:
        click.echo(f"package INVALID: {package.name}, {len(exc.problems)} problem(s):", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    click.echo(f"package OK: {report.files} files, signed by {report.signer}")


@main.group()
def audit() -> None:
    """The hash-chained audit log, its signed checkpoints and their witness copies."""


@audit.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the chain against the checkpoints and witness copies; print OK and the count, or
    the first bad sequence number and every fault (exit 1). The outcome is recorded."""

    async def work(res: _Resources) -> AuditReport:
        return await verify_and_record(res.store, res.engine, res.settings, actor=_operator(ctx))

    report = _run(work, migrate=False)
    chain = report.chain
    if report.ok:
        click.echo(f"OK: {chain.count} events, head {chain.head_seq} {chain.head_hash}")
        click.echo(
            f"checkpoints: {report.checkpoints} (last at event {report.last_checkpoint or '-'}),"
            f" witness copies: {report.witnesses}, key {report.key_id}"
        )
        return
    first = report.faults[0]
    click.echo(f"BROKEN at sequence number {first.seq} ({first.kind}): {first.message}", err=True)
    for fault in report.faults[1:]:
        click.echo(f"  also at {fault.seq} ({fault.kind}): {fault.message}", err=True)
    sys.exit(1)


@audit.command("checkpoint")
@click.pass_context
def audit_checkpoint(ctx: click.Context) -> None:
    """Sign the chain's head now if any event followed the last checkpoint."""

    async def work(res: _Resources) -> AuditCheckpoint | None:
        return await checkpoint_now(res.store, res.settings, actor=_operator(ctx), force=True)

    made = _run(work)
    if made is None:
        click.echo("nothing to sign: the last checkpoint covers the whole log")
        return
    click.echo(f"checkpoint at event {made.seq} ({made.entry_hash}), key {made.key_id}")


@audit.command("create-key")
def audit_create_key() -> None:
    """Create the checkpoint signing key unless it exists (in production, before serving)."""
    settings = _settings()
    path = settings.resolved_audit_signing_key
    existed = path.exists()
    try:
        key = load_checkpoint_key(path, create=True)
    except CheckpointError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None
    click.echo(f"{path}: {'exists' if existed else 'created'}")
    click.echo(f"checkpoint key id (SHA-256 of the public key): {key_id_of(key)}")


@main.group()
def user() -> None:
    """Local staff accounts (password + TOTP), for development and small installations."""


def _print_credentials(creds: NewCredentials) -> None:
    click.echo(f"user      {creds.account.username} ({creds.account.role})")
    click.echo(f"password  {creds.password}")
    click.echo(f"totp      {creds.totp_uri}")
    click.echo("Hand these over once; Balie keeps only a hash and the sealed TOTP secret.")


@user.command("add")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="Name shown to colleagues.")
@click.option("--employee-id", required=True, help="Recorded in the audit log.")
@click.option(
    "--role",
    type=click.Choice(sorted(STAFF_ROLES)),
    required=True,
    help="clerk, information_manager or privacy_officer.",
)
@click.option("--department", default=None, help="Department code (required for a clerk).")
def user_add(
    username: str, display_name: str, employee_id: str, role: str, department: str | None
) -> None:
    """Create a local account; prints a generated password and the TOTP enrolment URI."""

    async def work(res: _Resources) -> NewCredentials:
        async with res.store.sessions() as session, session.begin():
            return await add_local_account(
                session,
                secret_key=res.settings.secret_key.get_secret_value().encode(),
                username=username,
                display_name=display_name,
                employee_id=employee_id,
                role=role,
                department=department,
                now=await res.store.clock.now(session),
            )

    _print_credentials(_run(work))


@user.command("code")
@click.argument("username")
def user_code(username: str) -> None:
    """Print the account's current TOTP code (dev and test only: for the demo)."""
    settings = _settings()
    if not settings.is_development:
        raise click.ClickException("`user code` works only with BALIE_ENVIRONMENT=dev or test")

    async def work(res: _Resources) -> str:
        async with res.store.sessions() as session:
            return await current_totp_code(
                session,
                secret_key=res.settings.secret_key.get_secret_value().encode(),
                username=username,
                now=await res.store.clock.now(session),
            )

    click.echo(_run(work, settings=settings))


@user.command("reset")
@click.argument("username")
def user_reset(username: str) -> None:
    """Give a local account a new password and TOTP secret (the old ones stop working)."""

    async def work(res: _Resources) -> NewCredentials:
        async with res.store.sessions() as session, session.begin():
            return await reset_local_account(
                session,
                secret_key=res.settings.secret_key.get_secret_value().encode(),
                username=username,
            )

    _print_credentials(_run(work))


@main.group()
def appointment() -> None:
    """Book and cancel appointments."""


def _parse_time(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a time zone, e.g. {value}+01:00")
    return moment


@appointment.command("create")
@click.option("--department", required=True, help="Department code, e.g. burgerzaken.")
@click.option("--service", required=True, help="Service type code, e.g. geboorteaangifte.")
@click.option("--start", "start", required=True, help="ISO 8601 with time zone.")
@click.option("--minutes", type=click.IntRange(5, 480), default=30, show_default=True)
@click.option("--bsn", default=None, help="Book for this BSN (stored only as a pseudonym).")
@click.pass_context
def appointment_create(
    ctx: click.Context, department: str, service: str, start: str, minutes: int, bsn: str | None
) -> None:
    """Book an appointment; prints the appointment id, dossier id and deadline."""
    starts_at = _parse_time(start)

    async def work(res: _Resources) -> BookedAppointment:
        key = res.settings.pseudonym_key.get_secret_value().encode()
        pseudonym = bsn_pseudonym(key, bsn) if bsn else None
        return await create_appointment(
            res.store,
            actor=_operator(ctx),
            department=department,
            service_type=service,
            starts_at=starts_at,
            ends_at=starts_at + dt.timedelta(minutes=minutes),
            resident_pseudonym=pseudonym,
        )

    booked = _run(work)
    click.echo(f"appointment {booked.appointment.id}")
    click.echo(f"dossier     {booked.dossier.id}")
    click.echo(f"deadline    {booked.dossier.deadline.isoformat()}")


@appointment.command("cancel")
@click.argument("appointment_id", type=click.UUID)
@click.pass_context
def appointment_cancel(ctx: click.Context, appointment_id: uuid.UUID) -> None:
    """Cancel an appointment; its dossier is destroyed at once."""

    async def work(res: _Resources) -> Tombstone:
        return await cancel_appointment(
            res.store, actor=_operator(ctx), appointment_id=appointment_id
        )

    tombstone = _run(work)
    click.echo(f"cancelled; dossier {tombstone.dossier_id} {tombstone.outcome}")


@main.group()
def dossier() -> None:
    """Read and write dossier content (every read is audited)."""


@dossier.command("chat")
@click.argument("dossier_id", type=click.UUID)
@click.argument("text")
@click.pass_context
def dossier_chat(ctx: click.Context, dossier_id: uuid.UUID, text: str) -> None:
    """Append a chat message."""

    async def work(res: _Resources) -> ChatEntry:
        return await append_chat_message(
            res.store, actor=_operator(ctx), dossier_id=dossier_id, text=text
        )

    click.echo(f"message {_run(work).message_id}")


@dossier.command("chat-list")
@click.argument("dossier_id", type=click.UUID)
@click.pass_context
def dossier_chat_list(ctx: click.Context, dossier_id: uuid.UUID) -> None:
    """Print the decrypted chat of a dossier."""

    async def work(res: _Resources) -> list[ChatEntry]:
        return await list_chat_messages(res.store, actor=_operator(ctx), dossier_id=dossier_id)

    for entry in _run(work):
        click.echo(f"{entry.sent_at.isoformat()} [{entry.sender_role}] {entry.text}")


@dossier.command("put")
@click.argument("dossier_id", type=click.UUID)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--media-type", default="application/octet-stream", show_default=True)
@click.pass_context
def dossier_put(ctx: click.Context, dossier_id: uuid.UUID, path: Path, media_type: str) -> None:
    """Store a file in the dossier, encrypted."""

    async def work(res: _Resources) -> DocumentInfo:
        return await store_document(
            res.store,
            actor=_operator(ctx),
            dossier_id=dossier_id,
            name=path.name,
            media_type=media_type,
            content=_read_file(path),
        )

    info = _run(work)
    click.echo(f"document {info.document_id} ({info.size} bytes)")


async def _read_file(path: Path, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while data := await asyncio.to_thread(handle.read, chunk):
            yield data


@dossier.command("documents")
@click.argument("dossier_id", type=click.UUID)
@click.pass_context
def dossier_documents(ctx: click.Context, dossier_id: uuid.UUID) -> None:
    """List the dossier's documents."""

    async def work(res: _Resources) -> list[DocumentInfo]:
        return await list_documents(res.store, actor=_operator(ctx), dossier_id=dossier_id)

    for info in _run(work):
        click.echo(f"{info.document_id}  {info.size:>10}  {info.media_type:24}  {info.name}")


@dossier.command("get")
@click.argument("dossier_id", type=click.UUID)
@click.argument("document_id", type=click.UUID)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def dossier_get(
    ctx: click.Context, dossier_id: uuid.UUID, document_id: uuid.UUID, out: Path
) -> None:
    """Decrypt a document into OUT (removed again if it fails to authenticate)."""

    async def work(res: _Resources) -> int:
        opened = await open_document(
            res.store, actor=_operator(ctx), dossier_id=dossier_id, document_id=document_id
        )
        written = 0
        try:
            with out.open("wb") as handle:
                async for piece in opened.content:
                    await asyncio.to_thread(handle.write, piece)
                    written += len(piece)
        except BaseException:
            await asyncio.to_thread(out.unlink, missing_ok=True)
            raise
        return written

    click.echo(f"wrote {_run(work)} bytes to {out}")


@dossier.command("destroy")
@click.argument("dossier_id", type=click.UUID)
@click.pass_context
def dossier_destroy(ctx: click.Context, dossier_id: uuid.UUID) -> None:
    """Crypto-shred a dossier now, leaving its tombstone (idempotent)."""

    async def work(res: _Resources) -> Tombstone:
        return await destroy_dossier(
            res.store,
            actor=_operator(ctx),
            dossier_id=dossier_id,
            outcome=TombstoneOutcome.DESTROYED_BY_OPERATOR,
        )

    tombstone = _run(work)
    click.echo(f"dossier {tombstone.dossier_id}: {tombstone.outcome} at {tombstone.removed_at}")


main.add_command(retention_group)
main.add_command(policy_group)
