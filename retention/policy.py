"""The retention and service policy: one versioned TOML file, reviewed like code (DESIGN §3).

Per service type the policy says who may join (DigiD level of assurance), how long the dossier
may exist (at most 56 days: AVG storage limitation), whether it must reach the record system
first and under which selectielijst category (Archiefwet), the legal bases for both, whether the
BSN is sealed into the dossier, and which fees the clerk may charge. `deploy/policy.example.toml`
is the annotated reference.

Loading checks everything and reports every problem at once, each naming its key
(`service.geboorteaangifte.max_days: 60 is more than 56 ...`), so that an information manager
fixes the file in one round. Unknown keys are errors: a typo such as `max_dayz` must never fall
back to a default unnoticed. The SHA-256 digest of the exact file bytes goes on every tombstone,
so it is always known which text was in force.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar, cast, get_args

from retention.errors import PolicyError, UnknownFee, UnknownService

__all__ = [
    "MAX_DAYS",
    "MAX_FEE_CENTS",
    "ArchiveMode",
    "Fee",
    "LevelOfAssurance",
    "OnDeadline",
    "Policy",
    "ServiceRule",
    "load_policy",
    "parse_policy",
]

LevelOfAssurance = Literal["basis", "midden", "substantieel", "hoog"]
ArchiveMode = Literal["export_required", "export_optional", "none"]
OnDeadline = Literal["destroy", "escalate_then_destroy"]

MAX_DAYS = 56  # DESIGN §3: eight weeks, whatever the service
MAX_FEE_CENTS = 100_000  # €1000; more is a typo (euros written as cents), not a counter fee
_SLUG = re.compile(r"[a-z][a-z0-9_-]{1,63}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # tombstones keep it in 64 chars
_PERIOD = re.compile(r"P(?=\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?")  # selectielijst style: P1Y6M
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KINDS: dict[type[object], str] = {
    str: "text in quotes",
    int: "a whole number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Fee:
    """A fee the clerk may charge; `description` is plain Dutch, shown to the resident."""

    code: str
    description: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class ServiceRule:
    """What the policy says about one service type. Built by `parse_policy`, which checked it."""

    code: str
    label: str
    level_of_assurance: LevelOfAssurance
    max_days: int
    archive: ArchiveMode
    selectielijst: str  # "" only when archive is "none"
    avg_basis: str
    archief_basis: str  # "" only when archive is "none"
    on_deadline: OnDeadline
    needs_bsn: bool
    bewaartermijn: str  # ISO 8601 period ("P5Y") or "permanent"; "" only when archive is "none"
    informatiecategorie: str
    fees: tuple[Fee, ...]

    def fee(self, code: str) -> Fee:
        """The fee with `code`; raises UnknownFee if this service lists none by that code."""
        for fee in self.fees:
            if fee.code == code:
                return fee
        known = ", ".join(fee.code for fee in self.fees) or "none"
        raise UnknownFee(f"service {self.code} has no fee {code!r}; its fees: {known}")


@dataclass(frozen=True, slots=True)
class Policy:
    """A checked policy; `digest` is the SHA-256 (hex) of the exact bytes it was read from."""

    version: str
    municipality: str
    archiefvormer: str
    services: Mapping[str, ServiceRule]
    digest: str

    def rule(self, code: str) -> ServiceRule:
        """The rule for service type `code`; raises UnknownService if the policy has none."""
        try:
            return self.services[code]
        except KeyError:
            known = ", ".join(self.services)
            raise UnknownService(
                f"policy {self.version} has no service type {code!r}; it has: {known}"
            ) from None


def load_policy(path: Path) -> Policy:
    """The policy in the file at `path`, fully checked.

    Raises PolicyError listing every problem found, OSError if the file cannot be read.
    """
    return _parse(path.read_bytes(), str(path))


def parse_policy(text: str, *, source: str = "<string>") -> Policy:
    """The policy in `text`, fully checked; `source` names it in error messages.

    The digest covers the UTF-8 encoding of `text`, the same as `load_policy` of that file.
    Raises PolicyError listing every problem found.
    """
    return _parse(text.encode("utf-8"), source)


def _parse(data: bytes, source: str) -> Policy:
    try:
        # utf-8-sig: Windows editors may put a byte-order mark in front; that is no TOML error.
        document = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [f"the file is not UTF-8 text (byte {exc.start})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, [f"not valid TOML: {exc}"]) from exc
    problems: list[str] = []
    policy = _read_policy(document, hashlib.sha256(data).hexdigest(), problems)
    if problems:
        raise PolicyError(source, problems)
    return policy


def _read_policy(document: dict[str, object], digest: str, problems: list[str]) -> Policy:
    top = _Table(document, "", problems)
    version = top.text("version", limit=64, why=' (e.g. version = "2026-1")')
    if version and not _VERSION.fullmatch(version):
        top.problem("version", f"{version!r} must be letters, digits, '.', '_' or '-'")
    municipality = top.text("municipality", required=False, limit=200)
    archiefvormer = top.text("archiefvormer", required=False, limit=200)
    tables = top.value("service", dict, required=True, why=" (one [service.<code>] per service)")
    top.finish()
    services: dict[str, ServiceRule] = {}
    if tables == {}:
        top.problem("service", "no service types; the policy needs at least one")
    for code, body in (tables or {}).items():
        rule = _read_service(code, body, problems)
        if rule is not None:
            services[code] = rule
    exported = [code for code, rule in services.items() if rule.archive != "none"]
    if exported and "archiefvormer" not in document:
        # The export names the records creator on every record; better to find out now.
        top.problem(
            "archiefvormer",
            f"missing; {', '.join(exported)} go to the record system, which needs the records "
            'creator (e.g. archiefvormer = "Gemeente Voorbeeldstad")',
        )
    return Policy(version, municipality, archiefvormer, MappingProxyType(services), digest)


def _read_service(code: str, body: object, problems: list[str]) -> ServiceRule | None:
    path = f"service.{_key_part(code)}"
    if not _SLUG.fullmatch(code):
        problems.append(
            f"{path}: a service code must be a lowercase letter, then 1 to 63 lowercase "
            "letters, digits, '_' or '-'"
        )
    if not isinstance(body, dict):
        problems.append(f"{path}: must be a table ([{path}]), got {_show(body)}")
        return None
    table = _Table(body, path, problems)
    label = table.text("label", limit=200)
    loa = table.choice("level_of_assurance", get_args(LevelOfAssurance))
    max_days = table.whole(
        "max_days", 1, MAX_DAYS, why_high=" (AVG storage limitation: at most eight weeks)"
    )
    archive = table.choice("archive", get_args(ArchiveMode))
    # An unreadable archive mode counts as archiving: then these keys are needed anyway.
    archived = archive != "none"
    unless_none = ' (required unless archive = "none")'
    selectielijst = table.text("selectielijst", required=archived, limit=64, why=unless_none)
    avg_basis = table.text(
        "avg_basis", why=" (the legal basis for processing under the AVG, e.g. art. 6(1)(e))"
    )
    archief_basis = table.text("archief_basis", required=archived, why=unless_none)
    on_deadline = table.choice("on_deadline", get_args(OnDeadline))
    needs_bsn = table.value("needs_bsn", bool, required=False) or False
    bewaartermijn = table.text("bewaartermijn", required=archived, limit=32, why=unless_none)
    if bewaartermijn and not _is_period(bewaartermijn):
        table.problem(
            "bewaartermijn",
            f'{bewaartermijn!r} is not a period such as "P5Y" or "P1Y6M" (ISO 8601, '
            'not zero) nor "permanent"',
        )
    informatiecategorie = table.text("informatiecategorie", required=False, limit=200)
    fees = _read_fees(table)
    table.finish()
    return ServiceRule(
        code=code,
        label=label,
        level_of_assurance=cast(LevelOfAssurance, loa),
        max_days=max_days,
        archive=cast(ArchiveMode, archive),
        selectielijst=selectielijst,
        avg_basis=avg_basis,
        archief_basis=archief_basis,
        on_deadline=cast(OnDeadline, on_deadline),
        needs_bsn=needs_bsn,
        bewaartermijn=bewaartermijn,
        informatiecategorie=informatiecategorie,
        fees=fees,
    )


def _read_fees(service: _Table) -> tuple[Fee, ...]:
    how = f" (write each fee as a [[{service.path}.fees]] table)"
    entries = service.value("fees", list, required=False, why=how)
    fees: list[Fee] = []
    first_use: dict[str, int] = {}
    for index, entry in enumerate(entries or ()):
        path = f"{service.path}.fees[{index}]"
        if not isinstance(entry, dict):
            service.problems.append(f"{path}: must be a table{how}, got {_show(entry)}")
            continue
        table = _Table(entry, path, service.problems)
        code = table.text("code", limit=64)
        if code and not _SLUG.fullmatch(code):
            table.problem("code", f"{code!r} must be lowercase letters, digits, '_' or '-'")
        elif code in first_use:
            table.problem("code", f"{code!r} is already used by fees[{first_use[code]}]")
        elif code:
            first_use[code] = index
        description = table.text("description", limit=200)
        amount = table.whole(
            "amount_cents",
            1,
            MAX_FEE_CENTS,
            why_high=" (amounts are in cents: 100000 is €1000)",
            why_low=" (a free service lists no fee)",
        )
        table.finish()
        fees.append(Fee(code, description, amount))
    return tuple(fees)


class _Table:
    """One TOML table being read: hands out known keys and notes problems under full key paths.

    Readers return a harmless default ("" or the lowest value) after noting a problem, so that
    reading goes on and every problem in the file is found in one pass.
    """

    def __init__(self, data: dict[str, object], path: str, problems: list[str]) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.known: list[str] = []

    def problem(self, name: str, message: str) -> None:
        key = _key_part(name)
        self.problems.append(f"{self.path}.{key}: {message}" if self.path else f"{key}: {message}")

    def value(self, name: str, kind: type[_T], *, required: bool, why: str = "") -> _T | None:
        self.known.append(name)
        if name not in self.data:
            if required:
                self.problem(name, f"missing{why}")
            return None
        value = self.data[name]
        # Exact types: Python counts true as 1, and 12.5 cents must not quietly become 12.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.problem(name, f"must be {_KINDS[kind]}, got {_show(value)}{why}")
            return None
        return value

    def text(self, name: str, *, required: bool = True, limit: int = 500, why: str = "") -> str:
        value = self.value(name, str, required=required, why=why)
        if value is None:
            return ""
        if required and not value.strip():
            self.problem(name, f"must not be empty{why}")
        elif len(value) > limit:
            self.problem(name, f"is {len(value)} characters long; at most {limit} fit")
        elif _CONTROL.search(value):
            self.problem(name, "must be one line without tabs or control characters")
        else:
            return value
        return ""

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        value = self.value(name, str, required=True, why=f" (one of: {', '.join(options)})")
        if value is None:
            return ""
        if value not in options:
            self.problem(name, f"{value!r} is not one of: {', '.join(options)}")
            return ""
        return value

    def whole(
        self, name: str, low: int, high: int, *, why_high: str = "", why_low: str = ""
    ) -> int:
        value = self.value(name, int, required=True)
        if value is None:
            return low
        if value > high:
            self.problem(name, f"{value} is more than {high}{why_high}")
        elif value < low:
            self.problem(name, f"{value} is less than {low}{why_low}")
        return value

    def finish(self) -> None:
        """Refuse keys nobody read: a typo must not silently leave a default in force."""
        for name in self.data:
            if name not in self.known:
                close = difflib.get_close_matches(name, self.known, n=1)
                self.problem(
                    name, "unknown key" + (f" (did you mean {close[0]}?)" if close else "")
                )


def _is_period(value: str) -> bool:
    if value == "permanent":
        return True
    match = _PERIOD.fullmatch(value)
    return match is not None and any(int(part or 0) for part in match.groups())


def _key_part(name: str) -> str:
    """`name` as TOML writes it in a dotted key: bare if it can be, quoted otherwise."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"a date or time ({value})"
