"""``eventually`` (tests/support/cosmonaut_e2e.py), the wait of every end-to-end test: "not yet"
is retried, a failed assertion is never taken for "not yet"."""

from __future__ import annotations

import pytest

from tests.support.cosmonaut_e2e import eventually


def test_an_assertion_in_the_check_fails_at_once_with_its_message() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise AssertionError("the address is not an http URL")
        return True  # a later call that would pass must not hide the first failure

    with pytest.raises(AssertionError, match="the address is not an http URL"):
        eventually(check, timeout=5, interval=0.01)
    assert len(calls) == 1


def test_other_errors_and_falsy_answers_are_retried_until_the_check_holds() -> None:
    answers: list[object] = [ConnectionRefusedError("not listening yet"), None, 0, "up"]

    def check() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert eventually(check, timeout=5, interval=0.01) == "up"
    assert answers == []


def test_a_timeout_names_what_it_waited_for_and_the_last_error() -> None:
    def check() -> bool:
        raise ConnectionRefusedError("nothing listens on 10.0.0.1:80")

    with pytest.raises(pytest.fail.Exception) as failure:
        eventually(check, timeout=0.05, interval=0.01, what="HAProxy to listen")
    message = str(failure.value)
    assert "waiting for HAProxy to listen" in message
    assert "nothing listens on 10.0.0.1:80" in message
    assert isinstance(failure.value.__cause__, ConnectionRefusedError)
