"""The audit log keeps each event's canonical entry, exactly as hashed, and derives its fields.

`audit_events` gets an `entry` column holding the bytes the chain hashes; occurred_at, actor,
action, object_type, object_ref, result and detail become columns the database generates from
it (VIRTUAL on SQLite, STORED on PostgreSQL), so what a report reads cannot differ from what
the chain covers, and verification reads and hashes one column. `prev_hash` goes: it was the
previous row's `entry_hash`, stored twice. No hash changes: each entry is built from the row's
own fields, exactly as `canonical_entry` builds it, so a row altered before this migration
still fails verification after it.

The table is rebuilt (SQLite cannot turn a column into a generated one); its append-only
triggers from 0006 are dropped with it and created again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of retention.models.EntryField as of this revision.
DERIVED = {
    "sqlite": {
        "occurred_at": (
            "substr(entry, instr(entry, char(31)) + 1, 10) || ' ' || substr(entry, "
            "instr(entry, char(31)) + 12, 15)"
        ),
        "actor": (
            "substr(entry, instr(entry, char(31)) + 29, instr(substr(entry, instr(entry, "
            "char(31)) + 29), char(31)) - 1)"
        ),
        "action": (
            "substr(entry, instr(entry, char(31)) + 29 + length(actor) + 1, "
            "instr(substr(entry, instr(entry, char(31)) + 29 + length(actor) + 1), char(31)) "
            "- 1)"
        ),
        "object_type": (
            "substr(entry, instr(entry, char(31)) + 29 + length(actor) + 1 + length(action) + "
            "1, instr(substr(entry, instr(entry, char(31)) + 29 + length(actor) + 1 + "
            "length(action) + 1), char(31)) - 1)"
        ),
        "object_ref": (
            "substr(entry, instr(entry, char(31)) + 29 + length(actor) + 1 + length(action) + "
            "1 + length(object_type) + 1, instr(substr(entry, instr(entry, char(31)) + 29 + "
            "length(actor) + 1 + length(action) + 1 + length(object_type) + 1), char(31)) - "
            "1)"
        ),
        "result": (
            "substr(entry, instr(entry, char(31)) + 29 + length(actor) + 1 + length(action) + "
            "1 + length(object_type) + 1 + length(object_ref) + 1, instr(substr(entry, "
            "instr(entry, char(31)) + 29 + length(actor) + 1 + length(action) + 1 + "
            "length(object_type) + 1 + length(object_ref) + 1), char(31)) - 1)"
        ),
        "detail": (
            "substr(entry, instr(entry, char(31)) + 29 + length(actor) + 1 + length(action) + "
            "1 + length(object_type) + 1 + length(object_ref) + 1 + length(result) + 1)"
        ),
    },
    "postgresql": {
        "occurred_at": (
            "timezone('UTC', make_timestamp(substr(split_part(entry, chr(31), 2), 1, "
            "4)::integer, substr(split_part(entry, chr(31), 2), 6, 2)::integer, "
            "substr(split_part(entry, chr(31), 2), 9, 2)::integer, substr(split_part(entry, "
            "chr(31), 2), 12, 2)::integer, substr(split_part(entry, chr(31), 2), 15, "
            "2)::integer, substr(split_part(entry, chr(31), 2), 18, 9)::double precision))"
        ),
        "actor": ("split_part(entry, chr(31), 3)"),
        "action": ("split_part(entry, chr(31), 4)"),
        "object_type": ("split_part(entry, chr(31), 5)"),
        "object_ref": ("split_part(entry, chr(31), 6)"),
        "result": ("split_part(entry, chr(31), 7)"),
        "detail": ("split_part(entry, chr(31), 8)"),
    },
}
TYPES = {
    "occurred_at": sa.DateTime(timezone=True),
    "actor": sa.String(length=160),
    "action": sa.String(length=64),
    "object_type": sa.String(length=32),
    "object_ref": sa.String(length=64),
    "result": sa.String(length=32),
    "detail": sa.Text(),
}

# The v1 canonical entry built from the old columns (retention.audit.canonical_entry).
ENTRY_FROM_COLUMNS = {
    "sqlite": (
        "CAST(seq AS TEXT) || char(31)"
        " || substr(occurred_at, 1, 10) || 'T' || substr(occurred_at, 12) || 'Z' || char(31)"
        " || actor || char(31) || action || char(31) || object_type || char(31)"
        " || object_ref || char(31) || result || char(31) || detail"
    ),
    "postgresql": (
        "seq::text || chr(31)"
        " || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        " || chr(31) || actor || chr(31) || action || chr(31) || object_type || chr(31)"
        " || object_ref || chr(31) || result || chr(31) || detail"
    ),
}
GENESIS = "0" * 64  # the first event's prev_hash
_FIELDS = "occurred_at, actor, action, object_type, object_ref, result, detail"
_VERBS = {"sqlite": ("update", "delete"), "postgresql": ("update", "delete", "truncate")}


def _drop_guard(dialect: str) -> None:
    on = " ON audit_events" if dialect == "postgresql" else ""
    for verb in _VERBS[dialect]:
        op.execute(f"DROP TRIGGER IF EXISTS audit_events_no_{verb}{on}")


def _create_guard(dialect: str) -> None:
    """The append-only triggers of 0006, on the rebuilt table."""
    for verb in _VERBS[dialect]:
        if dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb} BEFORE {verb.upper()} ON audit_events"
                f" FOR EACH {'STATEMENT' if verb == 'truncate' else 'ROW'}"
                " EXECUTE FUNCTION balie_append_only()"
            )
        else:
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb} BEFORE {verb.upper()} ON audit_events"
                f" BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: {verb} refused'); END"
            )


def _replace_table(dialect: str, new: str) -> None:
    op.drop_table("audit_events")
    op.rename_table(new, "audit_events")
    if dialect == "postgresql":
        op.execute(f"ALTER TABLE audit_events RENAME CONSTRAINT {new}_pkey TO audit_events_pkey")
    op.create_index("ix_audit_events_action", "audit_events", ["action"], unique=False)
    op.create_index("ix_audit_events_object_ref", "audit_events", ["object_ref"], unique=False)
    _create_guard(dialect)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_guard(dialect)
    op.create_table(
        "audit_events_v2",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        *(
            sa.Column(
                name,
                TYPES[name],
                sa.Computed(sa.text(expression), persisted=dialect == "postgresql"),
                nullable=False,
            )
            for name, expression in DERIVED[dialect].items()
        ),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="audit_events_v2_pkey"),
    )
    op.execute(
        "INSERT INTO audit_events_v2 (seq, entry, entry_hash)"  # noqa: S608 (own constants)
        f" SELECT seq, {ENTRY_FROM_COLUMNS[dialect]}, entry_hash FROM audit_events ORDER BY seq"
    )
    _replace_table(dialect, "audit_events_v2")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_guard(dialect)
    op.create_table(
        "audit_events_v1",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        *(sa.Column(name, type_, nullable=False) for name, type_ in TYPES.items()),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="audit_events_v1_pkey"),
    )
    op.execute(
        f"INSERT INTO audit_events_v1 (seq, {_FIELDS}, prev_hash, entry_hash)"  # noqa: S608
        f" SELECT seq, {_FIELDS}, lag(entry_hash, 1, '{GENESIS}') OVER (ORDER BY seq),"
        " entry_hash FROM audit_events ORDER BY seq"
    )
    _replace_table(dialect, "audit_events_v1")
