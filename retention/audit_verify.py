"""Verifying the audit log as a whole: the chain, its signed checkpoints and their witnesses.

The chain walk (`verify_chain`) finds an edited, deleted or appended row and a tail cut off
without fixing the head. What a database owner can do on top of that (rewrite a stretch of
history, recompute every later hash and the head, cut off rows and head together, replace the
checkpoints) is found here:

* every checkpoint in the database must carry a valid signature by this installation's key
  (an attacker without the key who re-creates them is caught here);
* the event at a checkpoint's sequence number must still have the hash it vouched for, and no
  checkpoint may point past the end of the log (truncation);
* every witness file must have an identical checkpoint in the database (missing: the
  checkpoint was deleted; different: history was rewritten and signed again, with a stolen
  key or another one) and must agree with the log, and every checkpoint must have its witness;
* the columns a report reads must still be derived from the hashed entries
  (`retention.audit_columns`): a column redefined so that it can be written is found, at the
  first event where it shows something its entry does not say.

Each finding names a sequence number and what happened there: modified, deleted, inserted,
truncated or re-signed. The report's first fault is the one with the lowest number.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from dossier.crypto.signing_keys import key_fingerprint
from dossier.db import Clock
from retention.audit import Actor, ChainReport, record_event, verify_chain
from retention.audit_columns import column_faults
from retention.checkpoints import Witness, checkpoint_statement, read_witnesses
from retention.models import AuditCheckpoint, AuditEvent, AuditVerification

__all__ = [
    "AuditFault",
    "AuditReport",
    "last_checkpoint",
    "recent_verifications",
    "record_verification",
    "verify_audit",
]

KINDS = ("modified", "deleted", "inserted", "truncated", "re-signed")
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class AuditFault:
    """One finding: at event (or checkpoint) `seq`, what happened (one of KINDS), in words."""

    seq: int
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome of `verify_audit`; `faults` are ordered by sequence number."""

    chain: ChainReport
    key_id: str
    checkpoints: int
    witnesses: int
    last_checkpoint: int | None
    faults: tuple[AuditFault, ...]

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def first_bad_seq(self) -> int | None:
        return self.faults[0].seq if self.faults else None

    @property
    def kind(self) -> str:
        return self.faults[0].kind if self.faults else ""

    @property
    def reason(self) -> str:
        return self.faults[0].message if self.faults else ""


def _signed_by(public_key: Ed25519PublicKey, key_id: str, cp: AuditCheckpoint | Witness) -> bool:
    if cp.key_id != key_id:
        return False
    try:
        signature = bytes.fromhex(cp.signature)
        public_key.verify(
            signature,
            checkpoint_statement(seq=cp.seq, entry_hash=cp.entry_hash, signed_at=cp.signed_at),
        )
    except (ValueError, InvalidSignature):
        return False
    return True


async def _hashes_at(session: AsyncSession, seqs: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(seqs))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        query = select(col(AuditEvent.seq), col(AuditEvent.entry_hash)).where(
            col(AuditEvent.seq).in_(chunk)
        )
        found.update((seq, entry_hash) for seq, entry_hash in (await session.execute(query)).all())
    return found


async def _first_difference(session: AsyncSession, witness: Witness) -> int | None:
    """The first event in the witness's range whose hash the log no longer has, or None if
    the witness recorded no hashes to compare with."""
    if not witness.entry_hashes:
        return None
    query = (
        select(col(AuditEvent.seq), col(AuditEvent.entry_hash))
        .where(col(AuditEvent.seq) >= witness.first_seq, col(AuditEvent.seq) <= witness.seq)
        .order_by(col(AuditEvent.seq))
    )
    present = dict((await session.execute(query)).all())
    for seq in range(witness.first_seq, witness.seq + 1):
        if present.get(seq) != witness.hash_of(seq):
            return seq
    return None


class _Findings:
    def __init__(self) -> None:
        self._faults: dict[tuple[int, str], AuditFault] = {}

    def add(self, seq: int, kind: str, message: str) -> None:
        self._faults.setdefault((seq, kind), AuditFault(seq, kind, message))

    def ordered(self) -> tuple[AuditFault, ...]:
        return tuple(sorted(self._faults.values(), key=lambda f: (f.seq, KINDS.index(f.kind))))


async def _rewritten_at(
    session: AsyncSession, seq: int, witness: Witness | None
) -> tuple[int, str]:
    """Where a rewrite before checkpoint `seq` starts, and how precisely we know it."""
    if witness is not None:
        first = await _first_difference(session, witness)
        if first is not None:
            return first, f"event {first} is the first that differs from the witness copy"
        return witness.first_seq, f"somewhere in events {witness.first_seq} to {seq}"
    return seq, f"somewhere up to event {seq}"


async def verify_audit(
    engine: AsyncEngine, *, public_key: Ed25519PublicKey, witness_dir: Path
) -> AuditReport:
    """Walk the chain and check it against every checkpoint and witness copy (see module)."""
    chain = await verify_chain(engine)
    key_id = key_fingerprint(public_key)
    findings = _Findings()
    if not chain.ok and chain.first_bad_seq is not None:
        findings.add(chain.first_bad_seq, chain.kind, chain.reason)
    witnesses, problems = await asyncio.to_thread(read_witnesses, witness_dir)
    for seq, problem in problems:
        findings.add(seq, "modified", problem)
    by_seq = {w.seq: w for w in witnesses}
    async with AsyncSession(engine) as session:
        for seq, problem in await column_faults(session):
            findings.add(seq, "modified", problem)
        rows = list((await session.execute(select(AuditCheckpoint))).scalars())
        log_end = int(await session.scalar(select(func.max(col(AuditEvent.seq)))) or 0)
        stored = {row.seq: row for row in rows}
        hashes = await _hashes_at(session, stored.keys() | by_seq.keys())
        signed = {row.seq: _signed_by(public_key, key_id, row) for row in rows}
        for row in sorted(rows, key=lambda r: r.seq):
            await _check_checkpoint(
                session, findings, row, signed[row.seq], by_seq, hashes, log_end
            )
        for witness in witnesses:
            if not _signed_by(public_key, key_id, witness):
                findings.add(
                    witness.seq,
                    "re-signed",
                    f"the witness copy of checkpoint {witness.seq} is"
                    " not signed with this installation's key",
                )
            await _check_witness(session, findings, witness, stored, hashes, log_end)
        for seq in sorted(stored.keys() - by_seq.keys()):
            findings.add(
                seq,
                "inserted",
                f"checkpoint {seq} has no witness copy: it was added behind the"
                " witness directory's back (or the copy was removed)",
            )
    return AuditReport(
        chain=chain,
        key_id=key_id,
        checkpoints=len(rows),
        witnesses=len(witnesses),
        last_checkpoint=max(stored) if stored else None,
        faults=findings.ordered(),
    )


async def _check_checkpoint(
    session: AsyncSession,
    findings: _Findings,
    row: AuditCheckpoint,
    signed: bool,
    witnesses: Mapping[int, Witness],
    hashes: Mapping[int, str],
    log_end: int,
) -> None:
    seq = row.seq
    if not signed:
        findings.add(
            seq,
            "re-signed",
            f"checkpoint {seq} is not signed with this installation's key"
            f" (it names key {row.key_id[:16]}...): the checkpoints were made again",
        )
    if seq > log_end:
        findings.add(
            log_end + 1,
            "truncated",
            f"the log ends at event {log_end}, but checkpoint {seq}"
            f" vouches for event {seq}: events {log_end + 1} to {seq} were cut off",
        )
    elif hashes.get(seq) != row.entry_hash:
        first, how = await _rewritten_at(session, seq, witnesses.get(seq))
        findings.add(
            first,
            "modified",
            f"the log no longer matches checkpoint {seq}: history was rewritten ({how})",
        )


async def _check_witness(
    session: AsyncSession,
    findings: _Findings,
    witness: Witness,
    stored: Mapping[int, AuditCheckpoint],
    hashes: Mapping[int, str],
    log_end: int,
) -> None:
    seq = witness.seq
    row = stored.get(seq)
    if row is None:
        findings.add(
            seq,
            "deleted",
            f"checkpoint {seq} was deleted from the database; its witness copy remains",
        )
    elif not witness.matches(row):
        findings.add(
            seq,
            "re-signed",
            f"checkpoint {seq} in the database differs from its witness copy:"
            " it was made again over a rewritten history",
        )
    if seq > log_end:
        findings.add(
            log_end + 1,
            "truncated",
            f"the log ends at event {log_end}, but the witness copy of"
            f" checkpoint {seq} vouches for event {seq}: events {log_end + 1} to {seq} were cut"
            " off",
        )
    elif hashes.get(seq) != witness.entry_hash:
        first, how = await _rewritten_at(session, seq, witness)
        # The database's checkpoint agrees with the rewritten log: someone signed it again.
        resigned = (
            row is not None and not witness.matches(row) and hashes.get(seq) == row.entry_hash
        )
        findings.add(
            first,
            "re-signed" if resigned else "modified",
            f"the log no longer matches the witness copy of checkpoint {seq}: history was"
            f" rewritten{' and signed again' if resigned else ''} ({how})",
        )


async def record_verification(
    sessions: async_sessionmaker[AsyncSession],
    report: AuditReport,
    *,
    actor: Actor | str,
    clock: Clock,
) -> AuditVerification:
    """Store the outcome as an AuditVerification row and an `audit.verified` event together.

    If the event cannot be appended (a forged row sits where the next event belongs), the row
    is stored alone and says so.
    """
    detail = {
        "events": report.chain.count,
        "checkpoints": report.checkpoints,
        "witnesses": report.witnesses,
        "faults": len(report.faults),
        "first_bad_seq": report.first_bad_seq,
        "kind": report.kind,
    }

    def row_at(now: dt.datetime, reason: str) -> AuditVerification:
        return AuditVerification(
            verified_at=now,
            by=str(actor),
            ok=report.ok,
            events=report.chain.count,
            first_bad_seq=report.first_bad_seq,
            reason=reason[:500],
        )

    try:
        async with sessions() as session, session.begin():
            now = await clock.now(session)
            row = row_at(now, report.reason)
            session.add(row)
            await session.flush()
            await record_event(
                session,
                at=now,
                actor=actor,
                action="audit.verified",
                object_type="audit_log",
                object_ref=f"verification-{row.id}",
                result="ok" if report.ok else "broken",
                detail=detail,
            )
        return row
    except IntegrityError:
        async with sessions() as session, session.begin():
            now = await clock.now(session)
            note = "the audit.verified event could not be appended to the broken log"
            row = row_at(now, f"{report.reason}; {note}" if report.reason else note)
            session.add(row)
        return row


async def recent_verifications(session: AsyncSession, *, limit: int) -> list[AuditVerification]:
    """The newest `limit` verifications, newest first."""
    query = (
        select(AuditVerification)
        .order_by(col(AuditVerification.verified_at).desc(), col(AuditVerification.id).desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def last_checkpoint(session: AsyncSession) -> AuditCheckpoint | None:
    """The checkpoint with the highest sequence number, if any."""
    query = select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
    return (await session.execute(query)).scalars().first()
