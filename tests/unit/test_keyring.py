"""FileKeyring: monthly KEK files, created on demand in dev, destroyed for good."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading
from pathlib import Path

import pytest

from dossier.crypto.keyring import KEK_BYTES, FileKeyring, KeyInfo, kek_id_for
from dossier.errors import KeyUnavailable

JAN = dt.datetime(2024, 1, 15, 12, 0, tzinfo=dt.UTC)
FEB = dt.datetime(2024, 2, 3, 8, 30, tzinfo=dt.UTC)


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (JAN, "kek-202401"),
        (dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.UTC), "kek-202412"),
        # The month is the UTC month, whatever the moment's own time zone.
        (dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), "kek-202402"),
        (
            dt.datetime(2024, 1, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-1))),
            "kek-202402",
        ),
    ],
)
def test_kek_id_for_names_the_utc_month(moment: dt.datetime, expected: str) -> None:
    assert kek_id_for(moment) == expected


def test_create_missing_makes_the_months_key_on_demand(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=True)

    key_id, key = keyring.key_for_wrapping(JAN)

    assert key_id == "kek-202401"
    path = key_dir / "kek-202401.key"
    assert path.read_bytes() == key
    assert len(key) == KEK_BYTES == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert files_in(key_dir) == ["kek-202401.key"]  # no temporary files left over


def test_same_month_gives_the_same_key(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=True)
    first = keyring.key_for_wrapping(JAN)
    later_that_month = keyring.key_for_wrapping(JAN.replace(day=28))
    assert later_that_month == first
    # Another process (a fresh keyring without cache) reads the same key from disk.
    assert FileKeyring(key_dir, create_missing=True).key_for_wrapping(JAN) == first


def test_months_differ_and_older_keys_stay_available(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=True)
    jan_id, jan_key = keyring.key_for_wrapping(JAN)
    feb_id, feb_key = keyring.key_for_wrapping(FEB)

    assert (jan_id, feb_id) == ("kek-202401", "kek-202402")
    assert jan_key != feb_key
    assert keyring.get("kek-202401") == jan_key
    assert FileKeyring(key_dir, create_missing=False).get("kek-202401") == jan_key


def test_without_create_missing_a_missing_month_is_unavailable(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=False)
    with pytest.raises(KeyUnavailable):
        keyring.key_for_wrapping(JAN)
    with pytest.raises(KeyUnavailable):
        keyring.get("kek-202401")
    assert files_in(key_dir) == []


def test_without_create_missing_an_existing_key_is_used(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=False)
    assert keyring.create("kek-202401") is True
    assert keyring.create("kek-202401") is False
    key_id, key = keyring.key_for_wrapping(JAN)
    assert key_id == "kek-202401"
    assert key == (key_dir / "kek-202401.key").read_bytes()
    with pytest.raises(KeyUnavailable):
        keyring.key_for_wrapping(FEB)


@pytest.mark.parametrize(
    "key_id",
    [
        "",
        "kek-",
        "kek-2024",
        "kek-202400",
        "kek-202413",
        "kek-20241",
        "kek-2024011",
        "KEK-202401",
        "kek_202401",
        "kek-20240a",
        "kek-202401.key",
        " kek-202401",
        "../kek-202401",
        "kek-202401/../../x",
    ],
)
def test_invalid_key_ids_are_rejected(key_dir: Path, key_id: str) -> None:
    keyring = FileKeyring(key_dir, create_missing=True)
    with pytest.raises(KeyUnavailable):
        keyring.create(key_id)
    with pytest.raises(KeyUnavailable):
        keyring.get(key_id)
    with pytest.raises(KeyUnavailable):
        keyring.destroy(key_id)
    assert files_in(key_dir) == []


def test_key_id_with_trailing_newline_is_rejected(key_dir: Path) -> None:
    # `balie keys create --month` builds the id from operator input. The id pattern ends in
    # `$`, which also matches before a final newline, so this must not slip through.
    keyring = FileKeyring(key_dir, create_missing=False)
    with pytest.raises(KeyUnavailable):
        keyring.create("kek-202401\n")
    assert keyring.list_keys() == []
    assert files_in(key_dir) == []


def test_destroy_removes_the_key_for_good(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=True)
    keyring.key_for_wrapping(JAN)
    _, feb_key = keyring.key_for_wrapping(FEB)

    keyring.destroy("kek-202401")

    assert files_in(key_dir) == ["kek-202402.key"]
    with pytest.raises(KeyUnavailable):
        keyring.get("kek-202401")  # not served from the keyring's cache either
    with pytest.raises(KeyUnavailable):
        FileKeyring(key_dir, create_missing=False).get("kek-202401")
    assert [k.key_id for k in keyring.list_keys()] == ["kek-202402"]
    assert keyring.get("kek-202402") == feb_key


def test_destroy_is_idempotent(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=True)
    keyring.key_for_wrapping(JAN)
    keyring.destroy("kek-202401")
    keyring.destroy("kek-202401")
    keyring.destroy("kek-203001")  # never existed
    with pytest.raises(KeyUnavailable):
        keyring.get("kek-202401")


def test_a_destroyed_month_is_not_silently_recreated_without_create_missing(
    key_dir: Path,
) -> None:
    FileKeyring(key_dir, create_missing=True).key_for_wrapping(JAN)
    keyring = FileKeyring(key_dir, create_missing=False)
    keyring.destroy("kek-202401")
    with pytest.raises(KeyUnavailable):
        keyring.key_for_wrapping(JAN)


def test_list_keys_is_sorted_oldest_first(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=False)
    for key_id in ("kek-202503", "kek-202312", "kek-202401", "kek-202411"):
        keyring.create(key_id)
    (key_dir / "notes.txt").write_text("not a key")
    (key_dir / "kek-2024.key").write_bytes(bytes(32))
    (key_dir / ".kek-202402.0123456789abcdef.tmp").write_bytes(bytes(32))

    assert keyring.list_keys() == [
        KeyInfo(key_id=k, location=str(key_dir / f"{k}.key"))
        for k in ("kek-202312", "kek-202401", "kek-202411", "kek-202503")
    ]


def test_list_keys_without_a_directory_is_empty(key_dir: Path) -> None:
    assert FileKeyring(key_dir, create_missing=False).list_keys() == []


def test_key_info_does_not_carry_key_bytes(key_dir: Path) -> None:
    keyring = FileKeyring(key_dir, create_missing=True)
    _, key = keyring.key_for_wrapping(JAN)
    (info,) = keyring.list_keys()
    assert key.hex() not in repr(info)
    assert repr(key) not in repr(info)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_key_file_of_the_wrong_length_is_unavailable(key_dir: Path, length: int) -> None:
    key_dir.mkdir()
    (key_dir / "kek-202401.key").write_bytes(b"k" * length)
    keyring = FileKeyring(key_dir, create_missing=True)
    with pytest.raises(KeyUnavailable):
        keyring.get("kek-202401")
    with pytest.raises(KeyUnavailable):
        keyring.key_for_wrapping(JAN)


def test_loser_of_a_create_race_reads_the_winners_key(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyring B checks that the file is missing; A creates it before B links its own."""
    a = FileKeyring(key_dir, create_missing=True)
    b = FileKeyring(key_dir, create_missing=True)
    real_link = os.link
    results: dict[str, bool] = {}
    calls: list[str] = []

    def link_after_a_wins(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(os.fspath(dst))
        if len(calls) == 1:  # B's link: A slips in between B's existence check and link
            results["a"] = a.create("kek-202401")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_a_wins)
    results["b"] = b.create("kek-202401")
    monkeypatch.undo()

    assert results == {"a": True, "b": False}
    assert len(calls) == 2
    assert files_in(key_dir) == ["kek-202401.key"]
    _, key_b = b.key_for_wrapping(JAN)
    _, key_a = a.key_for_wrapping(JAN)
    assert key_a == key_b == (key_dir / "kek-202401.key").read_bytes()


def _race(keyrings: list[FileKeyring], key_id: str) -> tuple[list[bool], list[bytes]]:
    """Every keyring creates `key_id` at the same moment, then reads it."""
    barrier = threading.Barrier(len(keyrings))
    created: list[bool] = []
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def work(keyring: FileKeyring) -> None:
        try:
            barrier.wait()
            created.append(keyring.create(key_id))
            keys.append(keyring.get(key_id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in keyrings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return created, keys


def test_concurrent_creators_all_end_up_with_the_same_key(key_dir: Path) -> None:
    key_dir.mkdir()
    for month in range(1, 13):
        key_id = f"kek-2024{month:02d}"
        keyrings = [FileKeyring(key_dir, create_missing=True) for _ in range(8)]

        created, keys = _race(keyrings, key_id)

        assert sorted(created) == [False] * 7 + [True]
        assert len(keys) == 8
        assert set(keys) == {(key_dir / f"{key_id}.key").read_bytes()}
    assert files_in(key_dir) == [f"kek-2024{m:02d}.key" for m in range(1, 13)]
