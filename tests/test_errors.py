from http import HTTPStatus

import pytest

from algora import errors
from algora.errors import AlgoraError, error_body, error_from_body


def all_error_classes() -> list[type[AlgoraError]]:
    found = [AlgoraError]
    pending = [AlgoraError]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def test_error_body_shape_is_pinned() -> None:
    body = error_body(errors.ModelNotFound("model 'a/b' does not exist", details={"x": 1}))
    assert body == {
        "error": {
            "code": "model_not_found",
            "message": "model 'a/b' does not exist",
            "details": {"x": 1},
        }
    }


@pytest.mark.parametrize("cls", all_error_classes())
def test_every_error_round_trips_through_its_body(cls: type[AlgoraError]) -> None:
    original = cls("something went wrong", details={"k": "v"})
    rebuilt = error_from_body(int(cls.status), error_body(original))
    assert type(rebuilt) is cls
    assert rebuilt.message == "something went wrong"
    assert rebuilt.details == {"k": "v"}


def test_codes_are_unique_and_statuses_are_http() -> None:
    classes = all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert all(isinstance(c.status, HTTPStatus) for c in classes)


def test_every_error_is_in_the_docstring_tree_and_exported() -> None:
    for cls in all_error_classes():
        assert cls.__name__ in (errors.__doc__ or "")
        assert cls.__name__ in errors.__all__


def test_unknown_body_gives_a_generic_error() -> None:
    error = error_from_body(502, "<html>bad gateway</html>")
    assert isinstance(error, AlgoraError)
    assert "502" in error.message
