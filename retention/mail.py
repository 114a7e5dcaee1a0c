"""Retention notices by e-mail, when an SMTP server is configured.

Warnings go to the department's address (`notify_departments[code]`), escalations to the
information managers. A mail says which service type, which dossier (by reference), when it
will be destroyed and where in Balie to act; never anything about the resident. A notice that
could not be sent keeps `email_error` and is tried again on the next run; one that was sent
gets `emailed_at` and is never sent twice by this job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from pydantic import SecretStr
from sqlalchemy import select, update
from sqlmodel import col

from dossier.models import Department, ServiceType
from dossier.queries import LOCAL_TIME
from dossier.store import DossierStore
from retention.models import RetentionNotice
from retention.notices import ESCALATION

__all__ = ["MailSettings", "compose", "send_pending_notices"]

log = logging.getLogger(__name__)

_BATCH = 200
_WHEN = {
    "warning_14": ("over 14 dagen", "in 14 days"),
    "warning_7": ("over 7 dagen", "in 7 days"),
    "warning_1": ("morgen", "tomorrow"),
}


class MailSettings(Protocol):
    """What this module reads from `server.settings.Settings`."""

    @property
    def smtp_host(self) -> str: ...
    @property
    def smtp_port(self) -> int: ...
    @property
    def smtp_starttls(self) -> bool: ...
    @property
    def smtp_username(self) -> str: ...
    @property
    def smtp_from(self) -> str: ...
    @property
    def smtp_timeout(self) -> float: ...
    @property
    def notify_departments(self) -> dict[str, str]: ...
    @property
    def notify_information_managers(self) -> list[str]: ...
    @property
    def public_origin(self) -> str: ...
    @property
    def smtp_password(self) -> SecretStr: ...


@dataclass(frozen=True, slots=True)
class _Pending:
    notice: RetentionNotice
    label: str
    department: str


def compose(
    notice: RetentionNotice, *, label: str, origin: str, sender: str, to: list[str]
) -> EmailMessage:
    """The e-mail for one notice: Dutch first, then English; references and dates only."""
    deadline = notice.deadline.astimezone(LOCAL_TIME).strftime("%d-%m-%Y %H:%M")
    if notice.kind == ESCALATION:
        subject = f"Balie: gespreksdossier {label} zonder export, vernietiging op {deadline}"
        link = f"{origin}/beheer/meldingen"
        nl = (
            f"Een gespreksdossier ({label}) moet naar het archief, maar is nog niet "
            f"geëxporteerd. Het wordt op {deadline} vernietigd.\n"
        )
        en = (
            f"A session dossier ({label}) must be archived but has not been exported. "
            f"It will be destroyed on {deadline}.\n"
        )
    else:
        when_nl, when_en = _WHEN.get(notice.kind, ("binnenkort", "soon"))
        subject = f"Balie: gespreksdossier {label} wordt {when_nl} vernietigd ({deadline})"
        link = f"{origin}/balie"
        nl = (
            f"Een gespreksdossier ({label}) van uw afdeling wordt {when_nl} vernietigd, "
            f"op {deadline}. Exporteer het als het bewaard moet worden, of vraag een "
            "bewaarverzoek aan.\n"
        )
        en = (
            f"A session dossier ({label}) of your department will be destroyed {when_en}, "
            f"on {deadline}. Export it if it must be kept, or request a hold.\n"
        )
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="balie.invalid")
    message.set_content(
        f"{nl}\nDossier: {notice.dossier_id}\nOpen Balie: {link}\n\n-- \n{en}\n"
        f"Dossier: {notice.dossier_id}\nOpen Balie: {link}\n"
    )
    return message


def _send(settings: MailSettings, message: EmailMessage) -> None:
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


def _recipients(settings: MailSettings, item: _Pending) -> list[str]:
    if item.notice.kind == ESCALATION:
        return list(settings.notify_information_managers)
    address = settings.notify_departments.get(item.department)
    return [address] if address else []


async def send_pending_notices(
    store: DossierStore, settings: MailSettings, *, now: dt.datetime
) -> int:
    """Send every notice not yet e-mailed (nor acknowledged); returns how many went out.

    Does nothing while `smtp_host` is empty. Each failure (no address configured, server
    refuses or is unreachable) is stored in the notice's `email_error`, without personal data,
    and the notice is tried again next time.
    """
    if not settings.smtp_host:
        return 0
    async with store.sessions() as session:
        query = (
            select(RetentionNotice, col(ServiceType.label), col(Department.code))
            .join(Department, col(Department.id) == col(RetentionNotice.department_id))
            .outerjoin(ServiceType, col(ServiceType.code) == col(RetentionNotice.service_type))
            .where(
                col(RetentionNotice.emailed_at).is_(None),
                col(RetentionNotice.acknowledged_at).is_(None),
            )
            .order_by(col(RetentionNotice.created_at))
            .limit(_BATCH)
        )
        pending = [
            _Pending(notice, label or notice.service_type, code)
            for notice, label, code in (await session.execute(query)).all()
        ]
        await session.commit()
    sent = 0
    for item in pending:
        to = _recipients(settings, item)
        error: str | None = None
        if not to:
            who = "information managers" if item.notice.kind == ESCALATION else item.department
            error = f"no e-mail address configured for {who}"
        else:
            message = compose(
                item.notice,
                label=item.label,
                origin=settings.public_origin,
                sender=settings.smtp_from or f"balie@{settings.smtp_host}",
                to=to,
            )
            try:
                await asyncio.to_thread(_send, settings, message)
            except OSError as exc:  # smtplib's errors and ssl's are OSErrors
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("retention notice %s not e-mailed: %s", item.notice.id, error)
        values = {"email_error": error} if error else {"emailed_at": now, "email_error": None}
        async with store.sessions() as session, session.begin():
            await session.execute(
                update(RetentionNotice)
                .where(col(RetentionNotice.id) == item.notice.id)
                .values(**values)
            )
        sent += error is None
    return sent
