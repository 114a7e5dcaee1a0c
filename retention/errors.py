"""Errors of the retention package.

RetentionError         base; `code` is stable and machine-readable
└── InvalidAuditEvent  an event with a field that is empty, too long or has control chars
"""

from __future__ import annotations

__all__ = ["InvalidAuditEvent", "RetentionError"]


class RetentionError(Exception):
    code = "retention_error"


class InvalidAuditEvent(RetentionError):
    code = "invalid_audit_event"
