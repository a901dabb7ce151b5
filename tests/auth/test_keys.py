import pytest

from algora.auth.keys import generate_key, hash_key, keys_match, parse_authorization


def test_keys_look_like_algorithmia_keys_and_are_stored_hashed() -> None:
    new = generate_key()
    assert new.secret.startswith("sim") and len(new.secret) == 46
    assert new.secret.isalnum()
    assert new.key_hash == hash_key(new.secret) and new.secret not in new.key_hash
    assert keys_match(new.key_hash, new.secret)
    assert not keys_match(new.key_hash, new.secret + "x")
    assert generate_key().secret != new.secret


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Simple simABC", "simABC"),
        ("simple simABC", "simABC"),
        ("Bearer tok123", "tok123"),
        ("simABC", "simABC"),
        ("  simABC  ", "simABC"),
        ("Basic dXNlcjpwYXNz", None),
        ("", None),
        (None, None),
        ("Simple ", None),
        ("Bearer", None),
    ],
)
def test_parse_authorization(header, expected) -> None:
    assert parse_authorization(header) == expected
