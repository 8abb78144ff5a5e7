"""How an audit entry's actor reads for a person: runner tokens as processes, names as they are."""

import pytest

from hitl.service.views import actor_label


def test_a_runner_token_reads_as_the_process_that_ran_the_tool() -> None:
    token = "build-7.example.com~0a1b2c3d:16460:deadbeef:0123abcd"

    assert actor_label(token) == "tool runner (process 16460 on build-7.example.com)"


@pytest.mark.parametrize(
    "actor", ["alice", "policy", "deadline", "ledger", "role:ops", "a:1:2:3", "vm~x:12:ab:cd"]
)
def test_a_name_or_anything_else_is_shown_as_it_is(actor: str) -> None:
    assert actor_label(actor) == actor
