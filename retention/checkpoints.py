"""Signed checkpoints of the audit chain, in the database and in a witness directory.

A checkpoint is an Ed25519 signature over a fixed, versioned statement:

    balie-audit-checkpoint-v1
    seq <n>
    entry_hash <hex>
    signed_at <UTC, ISO 8601 with microseconds>Z

The signing key lives in a file outside the database; its id is the SHA-256 of the raw public
key. Each checkpoint is stored twice: as an `AuditCheckpoint` row, and as one JSON file in the
witness directory, which belongs on other storage (another volume, a WORM share). The file also
lists the entry hash of every event since the previous checkpoint, so that a history rewritten
and re-signed with a stolen key is pinned to the first event that differs. Witness files are
written atomically and never overwritten.

Making a checkpoint appends its own `audit.checkpoint` event first and signs the head that
includes it: the log records every checkpoint, and a quiet log does not earn a new one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from dossier.crypto.signing_keys import key_fingerprint, load_signing_key
from dossier.db import Clock
from dossier.fsutil import create_once
from retention.audit import Actor, EventFields, append_fields, lock_chain
from retention.errors import CheckpointError
from retention.models import AuditCheckpoint, AuditEvent, AuditHead

__all__ = [
    "STATEMENT_TAG",
    "CheckpointError",
    "Witness",
    "checkpoint",
    "checkpoint_statement",
    "ensure_last_witness",
    "key_id_of",
    "load_checkpoint_key",
    "read_witnesses",
    "signed_at_text",
    "witness_path",
    "write_witness",
]

STATEMENT_TAG = "balie-audit-checkpoint-v1"
WITNESS_FORMAT = "balie-audit-witness-v1"
# Above this many events since the previous checkpoint (a first checkpoint over an old log),
# the witness file keeps only the head; a rewrite is then pinned to the checkpoint, not the event.
WITNESS_HASH_LIMIT = 100_000
_WITNESS_NAME = re.compile(r"^checkpoint-(\d{12})\.json$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def load_checkpoint_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """The checkpoint signing key in `path` (made on demand only with `create`: dev and test).

    Raises CheckpointError naming the file when it is missing, unreadable or not Ed25519.
    """
    return load_signing_key(
        path,
        create=create,
        label="audit checkpoint signing key",
        create_hint="`balie audit create-key`",
        error=CheckpointError,
    )


def key_id_of(key: Ed25519PrivateKey) -> str:
    """The key id recorded on each checkpoint: SHA-256 (hex) of the raw public key."""
    return key_fingerprint(key.public_key())


def signed_at_text(moment: dt.datetime) -> str:
    """A signing time as the statement spells it."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_statement(*, seq: int, entry_hash: str, signed_at: dt.datetime | str) -> bytes:
    """The exact bytes a checkpoint signature covers (`signed_at` as a time or its text)."""
    when = signed_at if isinstance(signed_at, str) else signed_at_text(signed_at)
    return f"{STATEMENT_TAG}\nseq {seq}\nentry_hash {entry_hash}\nsigned_at {when}\n".encode()


@dataclass(frozen=True, slots=True)
class Witness:
    """One witness file: the checkpoint as signed, plus the entry hashes it covers.

    `entry_hashes` holds events `first_seq` .. `seq` (empty past WITNESS_HASH_LIMIT).
    """

    seq: int
    entry_hash: str
    signed_at: str
    key_id: str
    signature: str
    first_seq: int
    entry_hashes: tuple[str, ...] = ()

    @classmethod
    def of(cls, row: AuditCheckpoint, *, first_seq: int, entry_hashes: Sequence[str]) -> Witness:
        return cls(
            seq=row.seq,
            entry_hash=row.entry_hash,
            signed_at=signed_at_text(row.signed_at),
            key_id=row.key_id,
            signature=row.signature,
            first_seq=first_seq,
            entry_hashes=tuple(entry_hashes),
        )

    def matches(self, row: AuditCheckpoint) -> bool:
        """Whether `row` is exactly the checkpoint this file witnessed."""
        return (self.seq, self.entry_hash, self.signed_at, self.key_id, self.signature) == (
            row.seq,
            row.entry_hash,
            signed_at_text(row.signed_at),
            row.key_id,
            row.signature,
        )

    def hash_of(self, seq: int) -> str | None:
        """The entry hash this file recorded for event `seq`, if it covers it."""
        index = seq - self.first_seq
        return self.entry_hashes[index] if 0 <= index < len(self.entry_hashes) else None

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "format": WITNESS_FORMAT,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "signed_at": self.signed_at,
            "key_id": self.key_id,
            "signature": self.signature,
            "statement": f"{STATEMENT_TAG} seq {self.seq}",
            "first_seq": self.first_seq,
            "entry_hashes": list(self.entry_hashes),
        }
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> Witness:
        """Parse a witness file; raises ValueError saying what is wrong with it."""
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != WITNESS_FORMAT:
            raise ValueError(f"not a {WITNESS_FORMAT} file")
        seq, first = body.get("seq"), body.get("first_seq")
        hashes = body.get("entry_hashes")
        if not isinstance(seq, int) or not isinstance(first, int) or not isinstance(hashes, list):
            raise ValueError("seq, first_seq or entry_hashes missing or of the wrong type")
        texts = [body.get(k) for k in ("entry_hash", "signed_at", "key_id", "signature")]
        if not all(isinstance(v, str) for v in texts) or not all(
            isinstance(h, str) and _HEX64.match(h) for h in hashes
        ):
            raise ValueError("a hash, time, key id or signature is missing or malformed")
        entry_hash, signed_at, key_id, signature = (str(v) for v in texts)
        return cls(seq, entry_hash, signed_at, key_id, signature, first, tuple(hashes))


def witness_path(directory: Path, seq: int) -> Path:
    """Where the witness copy of checkpoint `seq` lives."""
    return directory / f"checkpoint-{seq:012d}.json"


def write_witness(directory: Path, witness: Witness) -> bool:
    """Store `witness` atomically (temporary file, fsync, link into place, fsync directory).

    Never overwrites: returns False when an identical copy is already there (another process
    wrote it), and raises CheckpointError when a different one is, or the write fails.
    """
    data = witness.to_json()
    path = witness_path(directory, witness.seq)
    try:
        if create_once(path, data, mode=0o640):
            return True
        if path.read_bytes() != data:
            raise CheckpointError(
                f"{path}: a different witness copy of checkpoint {witness.seq} exists;"
                " it is evidence and is not overwritten"
            )
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write the witness copy ({exc})") from None
    return False


def read_witnesses(directory: Path) -> tuple[list[Witness], list[tuple[int, str]]]:
    """Every witness file in `directory`, by sequence number, and (seq, problem) for each
    file that cannot be read or parsed. A missing directory holds no witnesses."""
    found: list[Witness] = []
    problems: list[tuple[int, str]] = []
    if not directory.is_dir():
        return found, problems
    for path in sorted(directory.iterdir()):
        match = _WITNESS_NAME.match(path.name)
        if match is None:
            continue  # temporary files and anything else an operator put there
        seq = int(match.group(1))
        try:
            witness = Witness.from_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            problems.append((seq, f"witness file {path.name} is unreadable ({exc})"))
            continue
        if witness.seq != seq:
            problems.append((seq, f"witness file {path.name} holds checkpoint {witness.seq}"))
            continue
        found.append(witness)
    return found, problems


async def _hashes(session: AsyncSession, first: int, last: int) -> list[str]:
    if last - first + 1 > WITNESS_HASH_LIMIT:
        return []
    query = (
        select(col(AuditEvent.entry_hash))
        .where(col(AuditEvent.seq) >= first, col(AuditEvent.seq) <= last)
        .order_by(col(AuditEvent.seq))
    )
    return list((await session.execute(query)).scalars())


async def _witness_for(session: AsyncSession, row: AuditCheckpoint) -> Witness:
    previous = await session.scalar(
        select(col(AuditCheckpoint.seq))
        .where(col(AuditCheckpoint.seq) < row.seq)
        .order_by(col(AuditCheckpoint.seq).desc())
        .limit(1)
    )
    first = (previous or 0) + 1
    return Witness.of(row, first_seq=first, entry_hashes=await _hashes(session, first, row.seq))


async def _last_checkpoint(session: AsyncSession) -> AuditCheckpoint | None:
    query = select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
    return (await session.execute(query)).scalars().first()


async def ensure_last_witness(
    sessions: async_sessionmaker[AsyncSession], *, witness_dir: Path
) -> bool:
    """Write the newest checkpoint's witness file if it is missing; True if written.

    The file follows the database commit, so a crash in between leaves a checkpoint without
    its copy; the next run finishes it. An existing file is never touched.
    """
    async with sessions() as session:
        last = await _last_checkpoint(session)
        if last is None or witness_path(witness_dir, last.seq).exists():
            return False
        witness = await _witness_for(session, last)
    return write_witness(witness_dir, witness)


async def checkpoint(
    sessions: async_sessionmaker[AsyncSession],
    *,
    key: Ed25519PrivateKey,
    witness_dir: Path,
    clock: Clock,
    actor: Actor | str,
    every_events: int = 1,
    every: dt.timedelta | None = None,
) -> AuditCheckpoint | None:
    """Sign the chain head if it is past the last checkpoint and a checkpoint is due.

    Due: there is no checkpoint yet, or `every_events` events followed the last one, or
    `every` passed since it (and at least one event followed). With the defaults any new event
    makes one due. Returns the new checkpoint, or None when none was due. Raises
    CheckpointError when the witness copy cannot be written (the row stays; the next call
    writes the copy).
    """
    await ensure_last_witness(sessions, witness_dir=witness_dir)
    key_id = key_id_of(key)
    async with sessions() as session, session.begin():
        await lock_chain(session)  # the head cannot move while it is being signed
        head = await session.get(AuditHead, 1)
        last = await _last_checkpoint(session)
        if head is None or (last is not None and head.seq <= last.seq):
            return None
        now = await clock.now(session)
        due = (
            last is None
            or head.seq - last.seq >= every_events
            or (every is not None and now - last.signed_at >= every)
        )
        if not due:
            return None
        seq = await append_fields(
            session,
            EventFields.build(
                at=now,
                actor=actor,
                action="audit.checkpoint",
                object_type="audit_log",
                object_ref=f"seq-{head.seq + 1}",
                detail={"key_id": key_id, "previous": last.seq if last else 0},
            ),
        )
        await session.refresh(head)
        statement = checkpoint_statement(seq=seq, entry_hash=head.entry_hash, signed_at=now)
        row = AuditCheckpoint(
            seq=seq,
            entry_hash=head.entry_hash,
            signed_at=now,
            key_id=key_id,
            signature=key.sign(statement).hex(),
        )
        session.add(row)
        await session.flush()
        witness = await _witness_for(session, row)
    write_witness(witness_dir, witness)
    return row
