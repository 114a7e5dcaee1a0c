"""Errors of the retention package.

RetentionError         base; `code` is stable and machine-readable
├── InvalidAuditEvent  an event with a field that is empty, too long or has control chars
├── PolicyError        the policy file is not acceptable; `problems` lists every reason
├── UnknownService     the policy in force has no rule for that service type
├── UnknownFee         the service's rule lists no fee with that code
├── PolicyRefused      a proposal, approval or rejection the four-eyes workflow does not allow
├── PolicyNotFound     no policy version with that id
└── CheckpointError    the audit checkpoint key is missing or unusable, or a witness file
                       cannot be written
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CheckpointError",
    "InvalidAuditEvent",
    "PolicyError",
    "PolicyNotFound",
    "PolicyRefused",
    "RetentionError",
    "UnknownFee",
    "UnknownService",
]


class RetentionError(Exception):
    code = "retention_error"


class InvalidAuditEvent(RetentionError):
    code = "invalid_audit_event"


class PolicyError(RetentionError):
    """The policy file cannot be used; `problems` lists every reason found.

    Each problem starts with the key it is about (`service.x.max_days: ...`), and the message
    puts each on its own line, so the whole file can be fixed in one round.
    """

    code = "invalid_policy"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = f"{len(self.problems)} problem" + ("" if len(self.problems) == 1 else "s")
        lines = "".join(f"\n  {problem}" for problem in self.problems)
        super().__init__(f"policy {source} is not valid ({count}):{lines}")


class UnknownService(RetentionError):
    code = "unknown_service"


class UnknownFee(RetentionError):
    code = "unknown_fee"


class PolicyRefused(RetentionError):
    """A proposal, approval or rejection that the workflow does not allow; says why."""

    code = "policy_refused"


class PolicyNotFound(RetentionError):
    code = "policy_not_found"


class CheckpointError(RetentionError):
    """The checkpoint key is missing or unusable, or a witness file cannot be written."""

    code = "audit_checkpoint_error"
