"""Task ids, owner ids and keys: formats, ordering and uniqueness."""

from __future__ import annotations

import hashlib
import re

from tasks_server.ids import hash_key, new_key, new_owner_id, new_task_id

CROCKFORD = re.compile(r"^[0-9A-HJKMNP-TV-Z]+$")


def test_task_id_is_24_characters_of_digits_and_capitals() -> None:
    for now in (0, 1, 1_900_000_000_000, 2**50 - 1):
        task_id = new_task_id(now)
        assert re.fullmatch(r"[0-9A-Z]{24}", task_id)
        assert CROCKFORD.match(task_id)


def test_task_ids_sort_by_creation_time() -> None:
    times = [0, 1, 31, 32, 1_000, 1_700_000_000_000, 1_900_000_000_000, 1_900_000_000_001]
    ids = [new_task_id(now) for now in times]
    assert sorted(ids) == ids


def test_task_ids_made_in_the_same_millisecond_differ() -> None:
    ids = {new_task_id(1_900_000_000_000) for _ in range(1_000)}
    assert len(ids) == 1_000
    assert {task_id[:10] for task_id in ids} == {new_task_id(1_900_000_000_000)[:10]}


def test_owner_id_is_a_ulid() -> None:
    owner_id = new_owner_id(1_900_000_000_000)
    assert len(owner_id) == 26
    assert CROCKFORD.match(owner_id)
    assert owner_id[0] in "01234567"  # a ULID's first character encodes at most 3 bits
    assert new_owner_id(1) < new_owner_id(2) < owner_id
    assert len({new_owner_id(5) for _ in range(1_000)}) == 1_000


def test_the_time_part_is_the_crockford_base32_of_the_milliseconds() -> None:
    assert new_task_id(0)[:10] == "0000000000"
    assert new_task_id(32)[:10] == "0000000010"
    assert new_task_id(31)[:10] == "000000000Z"
    assert new_task_id(10 * 32 + 18)[:10] == "00000000AJ"  # Crockford skips I and L
    assert new_owner_id(32**9)[:10] == "1000000000"


def test_key_is_64_alphanumerics_and_random() -> None:
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9]{64}", key)


def test_hash_key_is_the_sha256_digest() -> None:
    key = new_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).digest()
    assert len(hash_key(key)) == 32
    assert hash_key(key) == hash_key(key)
    assert hash_key(key) != hash_key(new_key())
