"""The retention policy file: the example loads, and every broken rule is refused by key."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from retention.errors import PolicyError, RetentionError, UnknownFee, UnknownService
from retention.policy import MAX_DAYS, Policy, load_policy, parse_policy
from server.demo import DEMO_APPOINTMENTS

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "policy.example.toml"
S = "service.geboorteaangifte"

VALID = """\
version = "2026-1"
municipality = "Voorbeeldstad"
archiefvormer = "Gemeente Voorbeeldstad"

[service.geboorteaangifte]
label = "Geboorteaangifte"
level_of_assurance = "substantieel"
max_days = 56
archive = "export_required"
selectielijst = "7.1.21"
avg_basis = "art. 6(1)(e) AVG; Wet BRP"
archief_basis = "Archiefwet 1995 art. 3"
on_deadline = "destroy"
needs_bsn = true
bewaartermijn = "P1Y6M"

[[service.geboorteaangifte.fees]]
code = "afschrift"
description = "Afschrift geboorteakte"
amount_cents = 1500

[service.informatie]
label = "Vraag aan de gemeente"
level_of_assurance = "basis"
max_days = 14
archive = "none"
avg_basis = "art. 6(1)(e) AVG"
on_deadline = "destroy"
"""


def edited(old: str, new: str, text: str = VALID) -> str:
    """`text` with the one occurrence of `old` replaced, so a typo in a test cannot pass."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    return caught.value.problems


def only_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --- what a valid file gives ------------------------------------------------------------


def test_valid_policy_reads_every_field() -> None:
    policy = parse_policy(VALID)
    assert (policy.version, policy.municipality) == ("2026-1", "Voorbeeldstad")
    assert policy.archiefvormer == "Gemeente Voorbeeldstad"
    assert list(policy.services) == ["geboorteaangifte", "informatie"]
    rule = policy.rule("geboorteaangifte")
    assert rule.level_of_assurance == "substantieel"
    assert (rule.max_days, rule.archive, rule.on_deadline) == (56, "export_required", "destroy")
    assert (rule.selectielijst, rule.bewaartermijn) == ("7.1.21", "P1Y6M")
    assert rule.needs_bsn is True
    assert rule.fee("afschrift").amount_cents == 1500
    assert rule.fee("afschrift").description == "Afschrift geboorteakte"


def test_optional_keys_take_their_defaults() -> None:
    rule = parse_policy(VALID).rule("informatie")
    assert rule.needs_bsn is False
    assert rule.fees == ()
    assert (rule.selectielijst, rule.archief_basis, rule.bewaartermijn) == ("", "", "")
    assert rule.informatiecategorie == ""


def test_example_file_loads_with_its_services() -> None:
    policy = load_policy(EXAMPLE)
    assert set(policy.services) == {
        "geboorteaangifte",
        "erkenning",
        "ondertrouw",
        "uittreksel_brp",
        "verhuizing",
        "informatie",
    }
    assert policy.archiefvormer
    assert policy.rule("geboorteaangifte").fees == ()
    assert policy.rule("erkenning").fees == ()
    assert policy.rule("ondertrouw").fee("trouwboekje").amount_cents == 3400
    assert policy.rule("uittreksel_brp").fee("uittreksel").amount_cents > 0
    assert policy.rule("verhuizing").fees == ()
    for code in ("geboorteaangifte", "erkenning", "ondertrouw"):
        rule = policy.rule(code)
        assert (rule.level_of_assurance, rule.archive, rule.needs_bsn) == (
            "substantieel",
            "export_required",
            True,
        )
        assert rule.selectielijst.startswith("7.")  # procestype 7 "Aangiften behandelen"


def test_the_demo_appointments_are_services_of_the_example() -> None:
    """`make demo` books one appointment per code in DEMO_APPOINTMENTS from this file."""
    policy = load_policy(EXAMPLE)
    assert set(DEMO_APPOINTMENTS) <= set(policy.services)
    assert policy.rule("uittreksel_brp").fees  # the demo has something to pay


def test_digest_is_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(VALID.encode("utf-8"))
    from_file = load_policy(path)
    assert from_file.digest == hashlib.sha256(VALID.encode("utf-8")).hexdigest()
    assert parse_policy(VALID).digest == from_file.digest


def test_digest_changes_with_any_change_to_the_text() -> None:
    base = parse_policy(VALID).digest
    assert parse_policy(VALID + "# reviewed again\n").digest != base
    assert parse_policy(edited("max_days = 56", "max_days = 55")).digest != base


def test_byte_order_mark_is_accepted_and_covered_by_the_digest() -> None:
    policy = parse_policy("\ufeff" + VALID)
    assert policy.version == "2026-1"
    assert policy.digest != parse_policy(VALID).digest


# --- lookups ----------------------------------------------------------------------------


def test_rule_for_unknown_service_names_it_and_the_known_ones() -> None:
    with pytest.raises(UnknownService) as caught:
        parse_policy(VALID).rule("paspoort")
    assert str(caught.value) == (
        "policy 2026-1 has no service type 'paspoort'; it has: geboorteaangifte, informatie"
    )


def test_fee_unknown_names_it() -> None:
    policy = parse_policy(VALID)
    with pytest.raises(UnknownFee) as caught:
        policy.rule("geboorteaangifte").fee("trouwboekje")
    assert str(caught.value) == (
        "service geboorteaangifte has no fee 'trouwboekje'; its fees: afschrift"
    )
    with pytest.raises(UnknownFee) as caught:
        policy.rule("informatie").fee("afschrift")
    assert str(caught.value) == "service informatie has no fee 'afschrift'; its fees: none"


def test_policy_and_rules_are_frozen() -> None:
    policy = parse_policy(VALID)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.version = "2026-2"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.rule("informatie").max_days = 56  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.services["x"] = policy.rule("informatie")  # type: ignore[index]


def test_errors_belong_to_the_retention_hierarchy() -> None:
    assert issubclass(PolicyError, RetentionError)
    assert PolicyError.code == "invalid_policy"
    assert UnknownService.code == "unknown_service"
    assert UnknownFee.code == "unknown_fee"


# --- each rule, refused by key ----------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("60", f"{S}.max_days: 60 is more than 56 (AVG storage limitation: at most eight weeks)"),
        ("57", f"{S}.max_days: 57 is more than 56 (AVG storage limitation: at most eight weeks)"),
        ("0", f"{S}.max_days: 0 is less than 1"),
        ("-3", f"{S}.max_days: -3 is less than 1"),
    ],
)
def test_max_days_outside_one_to_56_is_refused(days: str, message: str) -> None:
    assert only_problem(edited("max_days = 56", f"max_days = {days}")) == message


def test_max_days_limits_are_allowed() -> None:
    assert parse_policy(edited("max_days = 56", "max_days = 1")).rule("geboorteaangifte")
    assert MAX_DAYS == 56


def test_unknown_level_of_assurance() -> None:
    text = edited('"substantieel"', '"hoger"')
    assert only_problem(text) == (
        f"{S}.level_of_assurance: 'hoger' is not one of: basis, midden, substantieel, hoog"
    )


def test_unknown_archive_mode() -> None:
    text = edited('archive = "export_required"', 'archive = "export-required"')
    assert only_problem(text) == (
        f"{S}.archive: 'export-required' is not one of: export_required, export_optional, none"
    )


def test_unknown_on_deadline() -> None:
    text = edited('on_deadline = "destroy"\nneeds_bsn', 'on_deadline = "keep"\nneeds_bsn')
    assert only_problem(text) == (
        f"{S}.on_deadline: 'keep' is not one of: destroy, escalate_then_destroy"
    )


def test_missing_avg_basis() -> None:
    text = edited('avg_basis = "art. 6(1)(e) AVG; Wet BRP"\n', "")
    assert only_problem(text).startswith(f"{S}.avg_basis: missing (the legal basis")


def test_empty_legal_basis() -> None:
    text = edited('archief_basis = "Archiefwet 1995 art. 3"', 'archief_basis = "  "')
    assert only_problem(text).startswith(f"{S}.archief_basis: must not be empty")


@pytest.mark.parametrize("key", ["selectielijst", "archief_basis", "bewaartermijn"])
@pytest.mark.parametrize("archive", ["export_required", "export_optional"])
def test_archive_keys_required_when_exported(key: str, archive: str) -> None:
    lines = [line for line in VALID.splitlines() if not line.startswith(f"{key} =")]
    text = edited('archive = "export_required"', f'archive = "{archive}"', "\n".join(lines))
    assert only_problem(text) == f'{S}.{key}: missing (required unless archive = "none")'


def test_archive_keys_may_be_omitted_when_not_archived() -> None:
    assert parse_policy(VALID).rule("informatie").archive == "none"


def test_archiefvormer_required_when_anything_is_exported() -> None:
    text = edited('archiefvormer = "Gemeente Voorbeeldstad"\n', "")
    assert only_problem(text).startswith("archiefvormer: missing; geboorteaangifte go to")


def test_archiefvormer_not_required_when_nothing_is_exported() -> None:
    start = VALID.index("[service.geboorteaangifte]")
    end = VALID.index("[service.informatie]")
    text = VALID[:start] + VALID[end:]
    text = edited('archiefvormer = "Gemeente Voorbeeldstad"\n', "", text)
    assert parse_policy(text).archiefvormer == ""


@pytest.mark.parametrize("value", ["twintig jaar", "P", "P0Y", "P20", "20Y", "PT5H", "p5y"])
def test_bewaartermijn_must_be_a_period_or_permanent(value: str) -> None:
    text = edited('bewaartermijn = "P1Y6M"', f'bewaartermijn = "{value}"')
    assert only_problem(text).startswith(f"{S}.bewaartermijn: {value!r} is not a period")


@pytest.mark.parametrize("value", ["permanent", "P110Y", "P6M", "P10D", "P1Y6M10D"])
def test_bewaartermijn_accepted_forms(value: str) -> None:
    text = edited('bewaartermijn = "P1Y6M"', f'bewaartermijn = "{value}"')
    assert parse_policy(text).rule("geboorteaangifte").bewaartermijn == value


def test_unknown_service_key_is_refused_with_a_suggestion() -> None:
    found = problems(edited("max_days = 56", "max_dayz = 56"))
    assert found == [
        f"{S}.max_days: missing",
        f"{S}.max_dayz: unknown key (did you mean max_days?)",
    ]


def test_unknown_top_level_key_is_refused() -> None:
    found = problems(edited('version = "2026-1"', 'versoin = "2026-1"'))
    assert found == [
        'version: missing (e.g. version = "2026-1")',
        "versoin: unknown key (did you mean version?)",
    ]


def test_unknown_fee_key_is_refused() -> None:
    text = edited("amount_cents = 1500", "amount_cents = 1500\nbtw = 0")
    assert only_problem(text) == f"{S}.fees[0].btw: unknown key"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_days = 56", 'max_days = "56"', "max_days: must be a whole number, got '56'"),
        ("max_days = 56", "max_days = 56.0", "max_days: must be a whole number, got 56.0"),
        ("max_days = 56", "max_days = true", "max_days: must be a whole number, got true"),
        ("needs_bsn = true", 'needs_bsn = "yes"', "needs_bsn: must be true or false, got 'yes'"),
        ("needs_bsn = true", "needs_bsn = 1", "needs_bsn: must be true or false, got 1"),
        ('label = "Geboorteaangifte"', "label = 5", "label: must be text in quotes, got 5"),
        (
            'selectielijst = "7.1.21"',
            "selectielijst = 7.1",
            "selectielijst: must be text in quotes, got 7.1",
        ),
        (
            'avg_basis = "art. 6(1)(e) AVG; Wet BRP"',
            "avg_basis = 2026-01-01",
            "avg_basis: must be text in quotes, got a date or time (2026-01-01)",
        ),
    ],
)
def test_wrong_types_are_refused(old: str, new: str, message: str) -> None:
    assert only_problem(edited(old, new)).startswith(f"{S}.{message}")


def test_control_characters_in_text_are_refused() -> None:
    text = edited('label = "Geboorteaangifte"', 'label = "Geboorte\\taangifte"')
    assert only_problem(text) == (f"{S}.label: must be one line without tabs or control characters")


def test_over_long_text_is_refused() -> None:
    text = edited('label = "Geboorteaangifte"', f'label = "{"x" * 201}"')
    assert only_problem(text) == f"{S}.label: is 201 characters long; at most 200 fit"


# --- fees -------------------------------------------------------------------------------


def test_fractional_amount_is_refused() -> None:
    text = edited("amount_cents = 1500", "amount_cents = 12.5")
    assert only_problem(text) == f"{S}.fees[0].amount_cents: must be a whole number, got 12.5"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "0 is less than 1 (a free service lists no fee)"),
        ("100001", "100001 is more than 100000 (amounts are in cents: 100000 is €1000)"),
    ],
)
def test_amount_outside_range_is_refused(amount: str, message: str) -> None:
    text = edited("amount_cents = 1500", f"amount_cents = {amount}")
    assert only_problem(text) == f"{S}.fees[0].amount_cents: {message}"


def test_duplicate_fee_codes_are_refused() -> None:
    second = '\n[[service.geboorteaangifte.fees]]\ncode = "afschrift"\ndescription = "Nog een"\n'
    text = edited("amount_cents = 1500\n", "amount_cents = 1500\n" + second + "amount_cents = 1\n")
    assert only_problem(text) == f"{S}.fees[1].code: 'afschrift' is already used by fees[0]"


def test_fee_needs_code_and_description() -> None:
    text = edited('code = "afschrift"\ndescription = "Afschrift geboorteakte"\n', "")
    assert problems(text) == [f"{S}.fees[0].code: missing", f"{S}.fees[0].description: missing"]


def test_fee_code_must_be_a_slug() -> None:
    text = edited('code = "afschrift"', 'code = "Afschrift Akte"')
    assert only_problem(text).startswith(f"{S}.fees[0].code: 'Afschrift Akte' must be lowercase")


def test_fees_written_as_a_single_table_are_refused() -> None:
    text = edited("[[service.geboorteaangifte.fees]]", "[service.geboorteaangifte.fees]")
    assert only_problem(text) == (
        f"{S}.fees: must be a list, got a table (write each fee as a [[{S}.fees]] table)"
    )


# --- service codes and structure ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "path"),
    [
        ("[service.Geboorteaangifte]", "service.Geboorteaangifte"),
        ("[service.g]", "service.g"),
        ("[service.1geboorte]", "service.1geboorte"),
        ('[service."geboorte aangifte"]', 'service."geboorte aangifte"'),
    ],
)
def test_service_code_must_be_a_lowercase_slug(header: str, path: str) -> None:
    text = VALID.replace("service.geboorteaangifte", header[1:-1])
    assert only_problem(text) == (
        f"{path}: a service code must be a lowercase letter, then 1 to 63 lowercase "
        "letters, digits, '_' or '-'"
    )


def test_service_entry_must_be_a_table() -> None:
    text = VALID + "\n[service]\npaspoort = 5\n"
    assert only_problem(text) == "service.paspoort: must be a table ([service.paspoort]), got 5"


def test_policy_without_services_is_refused() -> None:
    head = 'version = "2026-1"\n'
    assert only_problem(head).startswith("service: missing")
    assert only_problem(head + "[service]\n") == (
        "service: no service types; the policy needs at least one"
    )


@pytest.mark.parametrize("version", ["2026 1", "", "-2026", "v" * 65])
def test_version_must_be_a_short_token(version: str) -> None:
    text = edited('version = "2026-1"', f'version = "{version}"')
    assert only_problem(text).startswith("version: ")


def test_not_toml_is_refused_with_the_position() -> None:
    assert only_problem("version = \n").startswith("not valid TOML: ")
    assert "line 1" in only_problem("version = \n")


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(VALID.replace("Voorbeeldstad", "Voorbeeldst\xe4d").encode("latin-1"))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems[0].startswith("the file is not UTF-8 text")
    assert str(path) in str(caught.value)


# --- everything at once -----------------------------------------------------------------


def test_all_problems_are_reported_together() -> None:
    text = edited("max_days = 56", "max_days = 60")
    text = edited('"substantieel"', '"hoger"', text)
    text = edited("amount_cents = 1500", "amount_cents = 12.5", text)
    text = edited('level_of_assurance = "basis"', 'level_of_assurance = "basis"\nkleur = 1', text)
    text = edited('archive = "none"', 'archive = "nooit"', text)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.toml")
    found = caught.value.problems
    assert found == [
        f"{S}.level_of_assurance: 'hoger' is not one of: basis, midden, substantieel, hoog",
        f"{S}.max_days: 60 is more than 56 (AVG storage limitation: at most eight weeks)",
        f"{S}.fees[0].amount_cents: must be a whole number, got 12.5",
        "service.informatie.archive: 'nooit' is not one of: export_required, export_optional, none",
        'service.informatie.selectielijst: missing (required unless archive = "none")',
        'service.informatie.archief_basis: missing (required unless archive = "none")',
        'service.informatie.bewaartermijn: missing (required unless archive = "none")',
        "service.informatie.kleur: unknown key",
    ]
    message = str(caught.value)
    assert message.startswith("policy policy.toml is not valid (8 problems):\n")
    assert message.splitlines()[1:] == [f"  {problem}" for problem in found]


def test_returned_policy_type() -> None:
    assert isinstance(parse_policy(VALID), Policy)
