"""The one place that decides who may do what (DESIGN section 1).

Every handler asks `decide` before it calls a service; every denial is audited by the caller
through `audit_denial`. The information manager and the privacy officer never get dossier
content: that firewall is a row in the table below, not a convention in handlers.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from identity.errors import Forbidden, NotAuthenticated
from identity.sessions import Principal

__all__ = ["Action", "Target", "decide", "require"]


class Action(enum.StrEnum):
    LIST_APPOINTMENTS = "list_appointments"
    BOOK_APPOINTMENT = "book_appointment"
    CANCEL_APPOINTMENT = "cancel_appointment"
    INVITE_GUEST = "invite_guest"  # a one-time link for an interpreter
    READ_CONTENT = "read_content"  # chat, documents and payments of a dossier
    READ_METADATA = "read_metadata"  # retention dates and states, no content
    ADD_DOCUMENT = "add_document"  # upload into the dossier during the call
    REQUEST_PAYMENT = "request_payment"  # the clerk asks the resident to pay a fee
    EXPORT = "export"  # hand the dossier over to the record system (then it is shredded)
    REQUEST_HOLD = "request_hold"  # ask to keep a dossier past its deadline
    DECIDE_HOLD = "decide_hold"  # approve, reject or release a hold (information manager)


@dataclass(frozen=True, slots=True)
class Target:
    """What an action is about: a department and, where there is one, an appointment."""

    department_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None


_STAFF_ONLY_OWN_DEPARTMENT = {
    Action.LIST_APPOINTMENTS,
    Action.BOOK_APPOINTMENT,
    Action.CANCEL_APPOINTMENT,
    Action.INVITE_GUEST,
    Action.READ_CONTENT,
    Action.READ_METADATA,
    Action.ADD_DOCUMENT,
    Action.REQUEST_PAYMENT,
    Action.EXPORT,
    Action.REQUEST_HOLD,
}
# What a resident may do, and only in their own appointment's dossier.
_RESIDENT = {Action.READ_CONTENT, Action.ADD_DOCUMENT}
_OVERSIGHT = ("information_manager", "privacy_officer")
# What only an information manager may do (besides reading metadata), for any department.
_INFORMATION_MANAGER = {Action.REQUEST_HOLD, Action.DECIDE_HOLD}


def decide(principal: Principal | None, action: Action, target: Target) -> str | None:
    """None if allowed, otherwise the reason it is not (for the audit log and the message)."""
    if principal is None or principal.kind == "anonymous":
        return "not signed in"
    if principal.kind == "staff":
        if principal.role == "clerk":
            if action is Action.DECIDE_HOLD:
                return "only an information manager decides on holds"
            if action in _STAFF_ONLY_OWN_DEPARTMENT and (
                target.department_id is None or principal.department_id != target.department_id
            ):
                return "this dossier belongs to another department"
            return None
        if principal.role == "information_manager" and action in _INFORMATION_MANAGER:
            return None
        if principal.role in _OVERSIGHT:
            # Oversight sees metadata of every dossier and never its content.
            return None if action is Action.READ_METADATA else f"a {principal.role} may not"
        return "unknown staff role"
    if principal.kind == "resident":
        if action not in _RESIDENT:
            return "residents may not"
        if target.appointment_id is None or principal.appointment_id != target.appointment_id:
            return "this is another resident's appointment"
        return None
    return f"a {principal.kind} may not"  # guests (interpreters): video and chat only


def require(principal: Principal | None, action: Action, target: Target) -> None:
    """Raise NotAuthenticated or Forbidden unless `decide` allows the action."""
    reason = decide(principal, action, target)
    if reason is None:
        return
    if reason == "not signed in":
        raise NotAuthenticated("sign in first")
    raise Forbidden(f"not allowed: {reason}")
