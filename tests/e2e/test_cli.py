"""The `hitl` CLI end to end: real processes, one SQLite file each, the outbox as side effects."""

import getpass
import json
import shlex
import socket
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import (
    RELAXED_RULE,
    STRICT_RULE,
    Workspace,
    assert_refused,
    calls_by_recipient,
    describe,
    error_message,
    file_tree,
    hitl,
)
from tests.support.prompts import COUNT, PAIR, SALLY


@dataclass(frozen=True)
class Seed:
    """A database with threads in known states, built once, copied for each test."""

    db: Path
    sally: str
    sally_call: str
    pair: str
    pair_decided_call: str
    """Approved already, by alice; its tool waits for the sibling's decision."""
    pair_pending_call: str
    done: str


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    # Every CLI start costs about a second, so the error tests share these threads (each on a
    # copy of the file) instead of each starting its own.
    workspace = Workspace(tmp_path_factory.mktemp("seed"))
    sally = workspace.json("run", SALLY)
    pair = workspace.json("run", PAIR)
    to = calls_by_recipient(pair)
    bob, carol = to["bob@example.com"], to["carol@example.org"]
    partly = workspace.json("approve", pair["thread_id"], "--call", bob, "--as", "alice")
    done = workspace.json("run", COUNT)
    assert [sally["status"], partly["status"], done["status"]] == ["interrupted"] * 2 + ["done"]
    return Seed(
        db=workspace.db,
        sally=sally["thread_id"],
        sally_call=sally["pending"][0]["tool_call_id"],
        pair=pair["thread_id"],
        pair_decided_call=bob,
        pair_pending_call=carol,
        done=done["thread_id"],
    )


@pytest.fixture
def seeded(tmp_path: Path, seed: Seed) -> Workspace:
    """This test's own copy of the seed database."""
    return Workspace.copy_of(seed.db, tmp_path)


def pending_ids(view: dict[str, Any]) -> list[str]:
    return [p["tool_call_id"] for p in view["pending"]]


def tool_results(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The thread's tool messages by tool call ID."""
    return {m["tool_call_id"]: m for m in view["messages"] if m["type"] == "tool"}


# the approval cycle, one process per step


def test_an_approved_email_is_sent_exactly_once_even_when_approved_again(
    workspace: Workspace,
) -> None:
    started = workspace.json("run", SALLY)
    assert {"thread_id", "status", "pending", "messages", "answer"} <= started.keys()
    assert started["status"] == "interrupted"
    assert started["answer"] is None
    [call] = started["pending"]
    assert call["tool"] == "send_email"
    assert call["args"] == {"recipient": "sally@example.com", "message": "hi"}
    assert "approve" in call["allowed_decisions"]
    assert call["thread_id"] == started["thread_id"]
    assert started["messages"][0] == {"type": "human", "content": SALLY, "text": SALLY}
    assert started["messages"][-1]["tool_calls"][0]["tool_call_id"] == call["tool_call_id"]
    assert workspace.sent() == []
    thread = started["thread_id"]

    shown = workspace.json("show", thread)
    assert shown["status"] == "interrupted"
    assert shown["pending"] == started["pending"]

    approved = workspace.json("approve", thread, "--as", "alice")
    assert approved["status"] == "done"
    assert approved["pending"] == []
    assert "Email sent to sally@example.com" in approved["answer"]
    assert tool_results(approved)[call["tool_call_id"]]["status"] == "success"
    [email] = workspace.sent()
    assert email["tool_call_id"] == call["tool_call_id"]
    assert email["recipient"] == "sally@example.com"

    assert_refused(
        workspace,
        "approve",
        thread,
        exit_code=4,
        error_type="NothingPending",
        says=[thread, "no pending approval", "status: done"],
        as_json=True,
    )
    assert_refused(
        workspace,
        "approve",
        thread,
        "--call",
        call["tool_call_id"],
        exit_code=6,
        says=[
            call["tool_call_id"],
            "already decided by alice",
            "(approve)",
            "it is now succeeded",
            "cannot be changed",
            "nothing was run again",
        ],
        as_json=False,
    )
    assert workspace.sent_ids() == [call["tool_call_id"]]


def test_a_rejected_email_is_never_sent_and_the_answer_gives_the_reason(
    workspace: Workspace,
) -> None:
    started = workspace.json("run", SALLY)
    call_id = pending_ids(started)[0]

    rejected = workspace.json("reject", started["thread_id"], "--reason", "not today")

    assert rejected["status"] == "done"
    assert rejected["pending"] == []
    assert "rejected" in rejected["answer"]
    assert "not today" in rejected["answer"]
    assert tool_results(rejected)[call_id]["status"] == "error"
    assert workspace.sent() == []


def test_parallel_calls_are_decided_one_by_one_from_different_processes(
    workspace: Workspace,
) -> None:
    started = workspace.json("run", PAIR)
    assert started["status"] == "interrupted"
    to = calls_by_recipient(started)
    assert to.keys() == {"bob@example.com", "carol@example.org"}
    bob, carol = to["bob@example.com"], to["carol@example.org"]
    thread = started["thread_id"]

    partly = workspace.json("approve", thread, "--call", bob)
    assert partly["status"] == "interrupted"
    assert pending_ids(partly) == [carol]
    assert workspace.sent() == []  # the turn's tools run once every call is decided

    shown = workspace.json("show", thread)
    assert shown["status"] == "interrupted"
    assert pending_ids(shown) == [carol]

    done = workspace.json("reject", thread, "--call", carol, "--reason", "wrong address")
    assert done["status"] == "done"
    assert done["pending"] == []
    assert workspace.sent_ids() == [bob]
    results = tool_results(done)
    assert results[bob]["status"] == "success"
    assert results[carol]["status"] == "error"
    assert "Email sent to bob@example.com" in done["answer"]
    assert "wrong address" in done["answer"]


def test_pending_calls_are_listed_in_the_models_order_whichever_registered_first(
    workspace: Workspace,
) -> None:
    started = workspace.json("run", PAIR)
    turn = [c["tool_call_id"] for c in started["messages"][-1]["tool_calls"]]
    # the turn's approval tasks run concurrently: make the race's other outcome happen for sure
    with closing(sqlite3.connect(workspace.db)) as conn, conn:
        conn.execute(
            "UPDATE hitl_approvals SET requested_at = requested_at - 1 WHERE tool_call_id = ?",
            (turn[1],),
        )

    shown = workspace.json("show", started["thread_id"])

    assert pending_ids(shown) == turn


def test_pending_lists_the_waiting_calls_of_every_thread_oldest_first(
    workspace: Workspace,
) -> None:
    first = workspace.json("run", SALLY)
    second = workspace.json("run", PAIR)

    page = workspace.json("pending")

    assert {k: page[k] for k in ("total", "offset", "limit")} == {
        "total": 3,
        "offset": 0,
        "limit": 50,
    }
    listed = page["pending"]
    assert [p["thread_id"] for p in listed] == [first["thread_id"]] + [second["thread_id"]] * 2
    expected = [
        (view["thread_id"], p["tool_call_id"], p["tool"], p["args"])
        for view in (first, second)
        for p in view["pending"]
    ]
    assert sorted(
        (p["thread_id"], p["tool_call_id"], p["tool"], p["args"]) for p in listed
    ) == sorted(expected)
    shown = {p["tool_call_id"]: p for view in (first, second) for p in view["pending"]}
    assert all(p == shown[p["tool_call_id"]] for p in listed)  # the same card everywhere
    for p in listed:
        assert (p["status"], p["expires_at"]) == ("pending", None)
        assert p["requester"] == getpass.getuser()  # no --as, no HITL_ACTOR: the OS user
        assert len(p["args_hash"]) == 64
    requested = [datetime.fromisoformat(p["requested_at"]) for p in listed]
    assert all(r.tzinfo is not None for r in requested)
    assert requested == sorted(requested)


def test_history_shows_the_pending_call_and_then_its_decision(workspace: Workspace) -> None:
    started = workspace.json("run", SALLY)
    thread, call_id = started["thread_id"], pending_ids(started)[0]
    workspace.json("approve", thread)

    history = workspace.json("history", thread)

    assert history["thread_id"] == thread
    entries = history["history"]
    for entry in entries:
        assert {"checkpoint_id", "step", "node", "created_at", "pending", "decided"} <= entry.keys()
        datetime.fromisoformat(entry["created_at"])
    steps = [e["step"] for e in entries]
    assert steps == sorted(steps)
    asked = next(i for i, e in enumerate(entries) if call_id in e["pending"])
    decided = next(i for i, e in enumerate(entries) if e["decided"].get(call_id) == "approve")
    assert asked < decided
    assert entries[asked]["node"] == "model"
    assert entries[decided]["node"] == "ApprovalMiddleware.after_model"


def test_show_pages_back_through_the_messages_and_refuses_a_page_the_thread_lacks(
    workspace: Workspace,
) -> None:
    thread = workspace.json("run", COUNT)["thread_id"]
    whole = workspace.json("show", thread)

    newest = workspace.json("show", thread, "--messages", "3")
    older = workspace.json("show", thread, "--messages", "3", "--before", "1")
    said = workspace.run("show", thread, "--messages", "3")
    beyond = workspace.json("show", thread, "--before", "5", exit_code=20)

    assert (whole["messages_total"], len(whole["messages"])) == (4, 4)
    assert newest["messages"] == whole["messages"][1:] and newest["messages_next_before"] == 1
    assert older["messages"] == whole["messages"][:1] and older["messages_next_before"] is None
    assert "(1 earlier of 4: --before 1)" in said.stdout
    assert beyond["error"]["type"] == "MessagesOutOfRange"
    assert "holds 4 messages" in beyond["error"]["message"]


def test_an_edited_call_runs_once_with_the_reviewers_arguments(
    seeded: Workspace, seed: Seed
) -> None:
    edited_args = {"recipient": "carol@example.com", "message": "see you"}

    done = seeded.json(
        "edit", seed.pair, "--call", seed.pair_pending_call, "--args", json.dumps(edited_args)
    )

    assert done["status"] == "done"
    sent = {email["tool_call_id"]: email for email in seeded.sent()}
    assert sent.keys() == {seed.pair_decided_call, seed.pair_pending_call}
    carol = sent[seed.pair_pending_call]
    assert {"recipient": carol["recipient"], "message": carol["message"]} == edited_args
    told = tool_results(done)[seed.pair_pending_call]["content"]
    assert "reviewer replaced this tool call" in told and "Executed instead" in told


def test_a_response_answers_in_the_tools_place_and_nothing_is_sent(
    seeded: Workspace, seed: Seed
) -> None:
    done = seeded.json(
        "respond", seed.sally, "--call", seed.sally_call, "--message", "I emailed her myself"
    )

    assert done["status"] == "done"
    answered = tool_results(done)[seed.sally_call]
    assert (answered["status"], answered["content"]) == ("success", "I emailed her myself")
    assert "I emailed her myself" in done["answer"]
    assert seeded.sent() == []


def test_version_prints_the_installed_package_version(workspace: Workspace) -> None:
    result = workspace.run("--version")

    assert result.returncode == 0, describe(result)
    assert result.stdout == f"hitl-approvals {version('hitl-approvals')}\n"


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (("pending",), "pending"),
        (("show", "{sally}"), "pending"),
        (("approve", "{sally}", "--as", "alice"), "answer"),
        (("token", "list"), "tokens"),
        (("webhook", "list"), "endpoints"),
        (("db", "status"), "rows"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_db_may_follow_the_command_name_and_wins_over_hitl_db_and_an_earlier_db(
    seeded: Workspace, seed: Seed, tmp_path: Path, command: tuple[str, ...], key: str
) -> None:
    elsewhere = str(tmp_path / "elsewhere.sqlite")  # missing: using it fails with exit 10
    args = [a.format(sally=seed.sally) for a in command]

    shown = seeded.json(
        "--db", elsewhere, *args, "--db", str(seeded.db), extra_env={"HITL_DB": elsewhere}
    )

    assert key in shown
    if command[0] == "pending":
        assert shown["total"] == 2


def test_the_decide_hint_of_run_names_the_db_it_was_given_and_works_as_printed(
    workspace: Workspace, tmp_path: Path
) -> None:
    db = tmp_path / "my approvals.sqlite"
    env = workspace.env({"HITL_DB": str(tmp_path / "elsewhere.sqlite")})

    started = hitl("run", SALLY, "--db", str(db), env=env, cwd=tmp_path)

    assert started.returncode == 0, describe(started)
    hint = next(line for line in started.stdout.splitlines() if line.startswith("decide with:"))
    approve = hint.removeprefix("decide with: ").split("  |  ")[0]
    assert approve.startswith(f"hitl --db {shlex.quote(str(db))} approve "), hint
    approved = hitl(*shlex.split(approve)[1:], "--json", env=env, cwd=tmp_path)
    assert approved.returncode == 0, describe(approved)
    assert json.loads(approved.stdout)["status"] == "done"


# refused commands: the exit code, a message saying what was wrong, and nothing written


def test_an_unknown_thread_is_refused_with_exit_3(seeded: Workspace) -> None:
    assert_refused(
        seeded,
        "approve",
        "no-such-thread",
        exit_code=3,
        says=["no thread 'no-such-thread'", "hitl pending", "--db / HITL_DB"],
        as_json=False,
    )
    assert_refused(
        seeded,
        "show",
        "no-such-thread",
        exit_code=3,
        error_type="ThreadNotFound",
        says=["no thread 'no-such-thread'"],
        as_json=True,
    )


@pytest.mark.parametrize("thread_id", ["a/b", ".", "..", "../etc", "with space"])
def test_a_new_thread_id_that_would_not_survive_a_url_is_a_usage_error_naming_the_rule(
    seeded: Workspace, thread_id: str
) -> None:
    """The HTTP API, the inbox and remote mode put thread IDs into URL paths as they are."""
    assert_refused(
        seeded,
        *("run", SALLY, "--thread", thread_id),
        exit_code=2,
        error_type="InvalidThreadId",
        says=[repr(thread_id), "letters, digits and . _ : @ -"],
        as_json=True,
    )


def test_deciding_a_finished_thread_is_refused_with_exit_4(seeded: Workspace, seed: Seed) -> None:
    assert_refused(
        seeded,
        "reject",
        seed.done,
        "--reason",
        "too late",
        exit_code=4,
        error_type="NothingPending",
        says=[seed.done, "no pending approval", "status: done"],
        as_json=True,
    )


def test_an_unknown_tool_call_is_refused_with_exit_5_and_the_pending_calls_listed(
    seeded: Workspace, seed: Seed
) -> None:
    assert_refused(
        seeded,
        "approve",
        seed.sally,
        "--call",
        "call_nope",
        exit_code=5,
        error_type="UnknownToolCall",
        says=["'call_nope'", f"pending calls: {seed.sally_call}"],
        as_json=True,
    )


def test_a_call_decided_earlier_cannot_be_decided_again_exit_6(
    seeded: Workspace, seed: Seed
) -> None:
    assert_refused(
        seeded,
        "reject",
        seed.pair,
        "--call",
        seed.pair_decided_call,
        exit_code=6,
        error_type="AlreadyDecided",
        says=[
            seed.pair_decided_call,
            "already decided by alice",
            "(approve)",
            "it is now approved",
            f"hitl audit {seed.pair}",
        ],
        as_json=True,
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ('{"recipient": 42, "message": "hi"}', "edited_action.args.recipient: Input should be"),
        ('{"message": "hi"}', "edited_action.args.recipient: Field required"),
        (
            '{"recipient": "a@b.c", "message": "hi", "cc": "z"}',
            "edited_action.args: send_email takes no argument 'cc'",
        ),
    ],
    ids=["wrong type", "missing argument", "unknown argument"],
)
def test_an_edit_that_does_not_fit_the_tool_is_refused_with_exit_8(
    seeded: Workspace, seed: Seed, args: str, problem: str
) -> None:
    assert_refused(
        seeded,
        "edit",
        seed.sally,
        "--call",
        seed.sally_call,
        "--args",
        args,
        exit_code=8,
        error_type="InvalidDecision",
        says=[f"invalid decision for tool call {seed.sally_call!r}", problem],
        as_json=True,
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [("{recipient: bob}", "not valid JSON"), ('["bob@example.com"]', "must be a JSON object")],
    ids=["not JSON", "not an object"],
)
def test_edit_args_that_are_not_a_json_object_are_a_usage_error(
    seeded: Workspace, seed: Seed, args: str, problem: str
) -> None:
    assert_refused(
        seeded,
        "edit",
        seed.sally,
        "--call",
        seed.sally_call,
        "--args",
        args,
        exit_code=2,
        says=["--args", problem],
        as_json=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("pending", "--offset"),
        ("pending", "--limit"),
        ("webhook", "deliveries", "--offset"),
        ("webhook", "deliveries", "--limit"),
    ],
    ids=" ".join,
)
def test_a_page_past_the_databases_integers_is_a_usage_error_naming_the_option(
    seeded: Workspace, command: tuple[str, ...]
) -> None:
    assert_refused(
        seeded,
        *command,
        str(2**63),
        exit_code=2,
        says=[f"Invalid value for '{command[-1]}'", f"{2**63} is not in the range"],
        as_json=False,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("show", "\udcff"), "'THREAD_ID'"),  # what Python makes of the shell's $'\\xff'
        (("pending", "--tool", "send_\udcff"), "'--tool'"),
        (("reject", "{sally}", "--reason", "caf\udce9"), "'--reason'"),
    ],
    ids=["thread ID", "filter", "reason"],
)
def test_an_argument_that_is_not_utf8_is_a_usage_error_naming_it(
    seeded: Workspace, seed: Seed, args: tuple[str, ...], named: str
) -> None:
    assert_refused(
        seeded,
        *(a.format(sally=seed.sally) for a in args),
        exit_code=2,
        says=[f"Invalid value for {named}", "is not valid UTF-8", "give it in UTF-8"],
        as_json=False,
    )


@pytest.mark.parametrize(
    ("args", "error_type", "says"),
    [
        (
            ("pending", "--bogus", "--json"),
            "NoSuchOption",
            ["No such option '--bogus'", "See `hitl pending --help`."],
        ),
        (("--json", "pending"), "NoSuchOption", ["No such option '--json'", "`hitl --help`"]),
        (
            ("show", "--json"),
            "MissingParameter",
            ["Missing argument 'THREAD_ID'", "`hitl show --help`"],
        ),
        (
            ("pending", "--limit", "0", "--json"),
            "BadParameter",
            ["Invalid value for '--limit'", "0 is not in the range", "`hitl pending --help`"],
        ),
        (
            ("audit", "--json"),
            "UsageError",
            ["give a THREAD_ID, or --verify", "`hitl audit --help`"],
        ),
    ],
    ids=["unknown option", "json before the command", "missing argument", "bad value", "usage"],
)
def test_a_usage_error_with_json_anywhere_is_the_json_error_shape_with_exit_2(
    workspace: Workspace, args: tuple[str, ...], error_type: str, says: list[str]
) -> None:
    result = workspace.run(*args)
    message = error_message(result, exit_code=2, as_json=True, error_type=error_type)
    for fragment in says:
        assert fragment in message, describe(result)
    assert result.stderr == "", describe(result)


def test_an_args_hash_that_is_no_sha256_digest_is_a_usage_error_not_a_change_of_args(
    seeded: Workspace, seed: Seed
) -> None:
    decide = ("approve", seed.sally, "--call", seed.sally_call, "--if-args-hash")

    assert_refused(
        seeded,
        *decide,
        "deadbeef",
        exit_code=2,
        says=["--if-args-hash", "'deadbeef' is not a valid args hash", "64 hex digits"],
        as_json=False,
    )
    assert_refused(  # well-formed but not the args': they changed, as before
        seeded,
        *decide,
        "0" * 64,
        exit_code=16,
        error_type="ArgsChanged",
        says=["changed since you looked"],
        as_json=True,
    )


def test_a_decision_the_policy_does_not_allow_is_refused_with_exit_7(
    workspace: Workspace,
) -> None:
    strict = workspace.write_policy(STRICT_RULE)
    started = workspace.json("run", SALLY, extra_env=strict)
    [call] = started["pending"]
    assert call["allowed_decisions"] == ["approve", "reject"]

    assert_refused(
        workspace,
        "respond",
        started["thread_id"],
        "--call",
        call["tool_call_id"],
        "--message",
        "sent it myself",
        exit_code=7,
        error_type="DecisionNotAllowed",
        says=["'respond' is not allowed for send_email", "allowed decisions: approve, reject"],
        as_json=True,
        extra_env=strict,
    )


def test_new_input_to_a_waiting_thread_is_refused_unless_its_calls_are_cancelled(
    seeded: Workspace, seed: Seed
) -> None:
    assert_refused(
        seeded,
        "run",
        COUNT,
        "--thread",
        seed.sally,
        exit_code=9,
        says=[seed.sally, seed.sally_call, "--cancel-pending"],
        as_json=False,
    )

    answered = seeded.json("run", COUNT, "--thread", seed.sally, "--cancel-pending")

    assert answered["status"] == "done"
    assert answered["pending"] == []
    cancelled = tool_results(answered)[seed.sally_call]
    assert cancelled["status"] == "error"
    assert "cancelled" in cancelled["content"]
    assert [m["content"] for m in answered["messages"] if m["type"] == "human"] == [SALLY, COUNT]
    assert "21 emails in the last 3 days" in answered["answer"]
    assert seeded.sent() == []


def unusable_database(kind: str, folder: Path) -> Path:
    """A database path that cannot be used, even by root (who ignores file permissions)."""
    if kind == "parent is a file":
        (folder / "a-file").write_text("x")
        return folder / "a-file" / "hitl.sqlite"
    if kind == "a folder":
        (folder / "a-folder").mkdir()
        return folder / "a-folder"
    (folder / "notes.txt").write_text("not SQLite\n")
    return folder / "notes.txt"


@pytest.mark.parametrize(
    ("kind", "as_json"),
    [("parent is a file", True), ("a folder", False), ("not a SQLite file", True)],
)
def test_an_unusable_database_is_refused_with_exit_10_naming_the_file_and_the_setting(
    workspace: Workspace, kind: str, as_json: bool
) -> None:
    db = unusable_database(kind, workspace.folder)
    before = file_tree(workspace.folder)

    result = workspace.run(
        "run", SALLY, *(["--json"] if as_json else []), extra_env={"HITL_DB": str(db)}
    )

    message = error_message(
        result, exit_code=10, as_json=as_json, error_type="DatabaseError" if as_json else None
    )
    assert f"cannot use the database {str(db)!r}" in message, describe(result)
    assert "--db or HITL_DB" in message, describe(result)
    assert file_tree(workspace.folder) == before


def test_serving_on_a_port_in_use_is_refused_with_exit_10_before_the_banner(
    seeded: Workspace,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        message = assert_refused(  # no banner, and no first admin token made and lost
            seeded,
            "serve",
            "--port",
            str(port),
            exit_code=10,
            says=[f"127.0.0.1:{port}", "in use", "--port"],
            as_json=False,
        )

    assert "Traceback" not in message


def test_serving_with_a_bad_setting_is_refused_with_exit_10_before_the_banner(
    seeded: Workspace,
) -> None:
    message = assert_refused(  # not a failure inside the server's start-up, exit 3
        seeded,
        "serve",
        "--port",
        "0",
        exit_code=10,
        says=["HITL_POLICY='nope'", "must look like package.module:attribute"],
        as_json=False,
        extra_env={"HITL_POLICY": "nope"},
    )
    assert "Traceback" not in message and "web inbox at" not in message


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("hitl_e2e_policy", "must look like package.module:attribute"),
        ("hitl_e2e_no_such_module:POLICY", "cannot be loaded: No module named"),
        ("hitl.graph.policy:ToolRule", "must name a hitl.graph.policy.Policy"),
    ],
    ids=["no attribute", "no such module", "not a policy"],
)
def test_a_bad_policy_setting_is_refused_with_exit_10_before_anything_runs(
    seeded: Workspace, seed: Seed, setting: str, problem: str
) -> None:
    assert_refused(
        seeded,
        "approve",
        seed.sally,
        exit_code=10,
        error_type="InvalidSettings",
        says=[f"HITL_POLICY={setting!r}", problem],
        as_json=True,
        extra_env={"HITL_POLICY": setting},
    )


# the policy's verdict is saved with the call when it is asked: a decider with another policy
# loaded cannot change whether the call needs a decision or which decisions it accepts


def test_a_rejection_holds_even_if_the_policy_was_relaxed_since_the_call_was_asked(
    workspace: Workspace,
) -> None:
    started = workspace.json("run", SALLY)
    relaxed = workspace.write_policy(RELAXED_RULE)

    workspace.run("reject", started["thread_id"], "--reason", "no", extra_env=relaxed)

    assert workspace.sent() == []


def test_a_decision_under_a_stricter_policy_fails_cleanly_without_writing(
    workspace: Workspace,
) -> None:
    started = workspace.json("run", SALLY)
    strict = workspace.write_policy(STRICT_RULE)
    before = workspace.state()

    result = workspace.run(
        "respond",
        started["thread_id"],
        "--call",
        pending_ids(started)[0],
        "--message",
        "sent it myself",
        extra_env=strict,
    )

    assert result.returncode != 1, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    if result.returncode != 0:
        assert workspace.state() == before, describe(result)
