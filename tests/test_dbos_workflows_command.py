"""``manage.py dbos_workflows``: tables and JSON for list/show/steps, every listing option,
cancel/resume/fork/delete, and clear errors (CommandError, exit codes) for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_dbos import DBOS, SetWorkflowID
from django_dbos.conf import dbos_settings
from django_dbos.engine.executor import reset_executor
from django_dbos.models import WorkflowStatus as Row
from django_dbos.testing import simulate_crash, workflow_step_names
from tests import introspection_workflows as iwf
from tests.conftest import REPO, worker_env

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
S = 1000


@pytest.fixture(autouse=True)
def quiet_executor(settings):
    """An executor whose heartbeat never fires during a test."""
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 3600.0, "EXECUTOR_TIMEOUT": 7200.0}
    executor = reset_executor()
    yield executor
    executor.stop(retire=False, wait=True)


def wf(*args: str) -> str:
    out = StringIO()
    call_command("dbos_workflows", *args, stdout=out)
    return out.getvalue()


def wf_json(*args: str):
    return json.loads(wf(*args, "--json"))


def ids_in(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[1:-1]]


def add(workflow_id: str, status: str, name: str, created: int, **fields) -> None:
    Row.objects.using(dbos_settings().DATABASE).create(
        workflow_uuid=workflow_id,
        status=status,
        name=name,
        created_at=T0 + created * S,
        updated_at=fields.pop("updated_at", T0 + created * S),
        **fields,
    )


@pytest.fixture
def three():
    add("cmd-a", "SUCCESS", "tests.intro.ok", 0, updated_at=T0 + 1500, executor_id="e1")
    add(
        "cmd-b", "ERROR", "tests.intro.failing", 1, queue_name="q1", executor_id="e2",
        started_at_epoch_ms=T0 + 2 * S, updated_at=T0 + 67 * S, application_version="v2",
        attributes=json.dumps({"tenant": "acme", "tier": 2}), parent_workflow_id="cmd-a",
    )  # fmt: skip
    add(
        "cmd-c", "PENDING", "tests.intro.longer-name", 2, executor_id="e1",
        attributes=json.dumps({"tenant": "acme", "tier": "2"}), authenticated_user="ann",
    )  # fmt: skip


# -- list ------------------------------------------------------------------------------------


def test_list_prints_an_aligned_table_newest_first(three):
    assert wf("list") == (
        "ID     NAME                     STATUS   QUEUE  CREATED              DURATION\n"
        "cmd-c  tests.intro.longer-name  PENDING  -      2023-11-14 22:13:22  -\n"
        "cmd-b  tests.intro.failing      ERROR    q1     2023-11-14 22:13:21  1m 05s\n"
        "cmd-a  tests.intro.ok           SUCCESS  -      2023-11-14 22:13:20  1.5 s\n"
        "3 workflows.\n"
    )  # fmt: skip
    assert ids_in(wf("list", "--asc")) == ["cmd-a", "cmd-b", "cmd-c"]


def test_list_shows_times_in_djangos_time_zone(three):
    with timezone.override("Asia/Tokyo"):
        assert "2023-11-15 07:13:20" in wf("list", "--prefix", "cmd-a")


def test_list_pages_and_says_when_more_may_match(three):
    page = wf("list", "--limit", "2")
    assert ids_in(page) == ["cmd-c", "cmd-b"]
    assert page.splitlines()[-1] == "2 shown; more may match: --offset 2."
    assert ids_in(wf("list", "--limit", "2", "--offset", "2")) == ["cmd-a"]
    assert wf("list", "--offset", "3") == "No workflows match.\n"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--status", "ERROR"], ["cmd-b"]),
        (["--status", "error,pending"], ["cmd-c", "cmd-b"]),
        (["--status", "SUCCESS", "--status", "ERROR"], ["cmd-b", "cmd-a"]),
        (["--name", "tests.intro.ok"], ["cmd-a"]),
        (["--name", "tests.intro.ok", "--name", "tests.intro.failing"], ["cmd-b", "cmd-a"]),
        (["--queue", "q1"], ["cmd-b"]),
        (["--since", "2023-11-14T22:13:21Z"], ["cmd-c", "cmd-b"]),
        (["--since", str(T0 + 2 * S)], ["cmd-c"]),
        (["--until", "2023-11-14 23:13:20+01:00"], ["cmd-a"]),
        (["--since", "2023-11-14T22:13:21Z", "--until", str(T0 + S)], ["cmd-b"]),
        (["--version", "v2"], ["cmd-b"]),
        (["--prefix", "cmd-a"], ["cmd-a"]),
        (["--executor", "e1"], ["cmd-c", "cmd-a"]),
        (["--parent", "cmd-a"], ["cmd-b"]),
        (["--user", "ann"], ["cmd-c"]),
        (["--attr", "tenant=acme"], ["cmd-c", "cmd-b"]),
        (["--attr", "tier=2"], ["cmd-b"]),  # JSON: the number 2
        (["--attr", 'tier="2"'], ["cmd-c"]),  # JSON: the string "2"
        (["--attr", "tenant=acme", "--attr", "tier=2"], ["cmd-b"]),
        (["--status", "PENDING", "--executor", "e1", "--attr", "tenant=acme"], ["cmd-c"]),
        (["--queued"], []),  # cmd-b is on a queue but finished
        (["--queued", "--status", "ERROR"], ["cmd-b"]),
    ],
    ids=" ".join,
)
def test_list_options_filter(three, options, expected):
    assert ids_in(wf("list", *options)) == expected


def test_relative_times_count_back_from_now():
    now = int(time.time() * 1000)
    add("age-old", "SUCCESS", "n", (now - 3 * 3600 * S - T0) // S)
    add("age-new", "SUCCESS", "n", (now - 60 * S - T0) // S)
    assert ids_in(wf("list", "--since", "2h")) == ["age-new"]
    assert ids_in(wf("list", "--since", "1d", "--until", "90m")) == ["age-old"]
    assert ids_in(wf("list", "--since", "30s")) == []


def test_list_json_is_machine_readable(three):
    listed = wf_json("list", "--status", "ERROR")
    assert [item["workflow_id"] for item in listed] == ["cmd-b"]
    item = listed[0]
    assert item["status"] == "ERROR" and item["queue_name"] == "q1"
    assert item["created_at"] == T0 + S and item["completed_at"] == T0 + 67 * S
    assert item["duration_ms"] == 65 * S and item["dequeued_at"] == T0 + 2 * S
    assert item["attributes"] == {"tenant": "acme", "tier": 2}
    assert item["app_version"] == "v2" and item["parent_workflow_id"] == "cmd-a"
    assert {"input", "output", "error"}.isdisjoint(item)  # not loaded without --values
    assert wf_json("list", "--prefix", "none-") == []


def test_list_values_show_inputs_outputs_and_errors():
    with SetWorkflowID("val-ok"):
        iwf.other_workflow(iwf.datetime.date(2024, 5, 1))
    with pytest.raises(iwf.IntroError), SetWorkflowID("val-failing"):
        iwf.failing_workflow("out of stock")

    header, *rows, _ = wf("list", "--values").splitlines()
    assert header.endswith("OUTPUT / ERROR")
    lines = {row.split()[0]: row for row in rows}
    assert lines["val-ok"].endswith("{'total': Decimal('12.50')}")
    assert lines["val-failing"].endswith("IntroError: out of stock")

    failing, ok = sorted(wf_json("list", "--values"), key=lambda item: item["name"])
    assert ok["input"] == {"args": ["2024-05-01"], "kwargs": {}}
    assert ok["output"] == {"total": "12.50"} and ok["error"] is None
    assert failing["error"] == {"type": "IntroError", "message": "out of stock"}


# -- show and steps ----------------------------------------------------------------------------


def test_show_prints_one_workflow():
    with SetWorkflowID("show-me"):
        iwf.ok_workflow(4, note="hi")
    lines = wf("show", "show-me").splitlines()
    assert lines[:3] == [
        "Workflow ID:       show-me",
        "Name:              tests.intro.ok",
        "Status:            SUCCESS",
    ]
    assert "Input:             (4, note='hi')" in lines
    assert lines[-1] == "Output:            9"
    shown = wf_json("show", "show-me")
    assert shown["input"] == {"args": [4], "kwargs": {"note": "hi"}} and shown["output"] == 9


def test_show_a_failed_workflow_gives_its_error():
    with pytest.raises(iwf.IntroError), SetWorkflowID("show-failed"):
        iwf.failing_workflow("boom")
    output = wf("show", "show-failed")
    assert "Error:             IntroError: boom" in output
    assert "Output:" not in output


def test_steps_prints_the_recorded_steps():
    with SetWorkflowID("steps-me"):
        iwf.parent_workflow(2)
    lines = wf("steps", "steps-me").splitlines()
    assert lines[0].split() == [
        "STEP",
        "NAME",
        "STARTED",
        "DURATION",
        "CHILD",
        "OUTPUT",
        "/",
        "ERROR",
    ]
    assert lines[1].split()[:2] == ["1", "tests.intro.double"] and lines[1].endswith(" 4")
    assert lines[2].split()[:2] == ["2", "tests.intro.ok"] and "steps-me-2" in lines[2]
    steps = wf_json("steps", "steps-me")
    assert [s["function_name"] for s in steps] == ["tests.intro.double", "tests.intro.ok"]
    assert steps[0]["output"] == 4 and steps[0]["duration_ms"] >= 0
    assert steps[1]["child_workflow_id"] == "steps-me-2"
    assert wf("steps", "steps-me-2").splitlines()[1].split()[:2] == ["1", "tests.intro.double"]


# -- mistakes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "No workflow with ID 'nope' exists."),
        (["steps", "nope"], "No workflow with ID 'nope' exists."),
        (["cancel", "nope"], "No workflow with ID 'nope' exists."),
        (["resume", "nope"], "No workflow with ID 'nope' exists."),
        (["delete", "nope"], "No workflow with ID 'nope' exists."),
        (["fork", "nope", "--step", "1"], "nope"),
        (["list", "--status", "DONE"], "argument --status: unknown status 'DONE'"),
        (["list", "--since", "yesterday"], "argument --since: 'yesterday' is not a time"),
        (["list", "--until", "2024-13-01"], "argument --until: '2024-13-01' is not a time"),
        (["list", "--until", "9" * 30], "argument --until: '999"),
        (["list", "--attr", "tenant"], "argument --attr: 'tenant' is not key=value"),
        (["list", "--attr", "=x"], "argument --attr: '=x' is not key=value"),
        (["list", "--attr", "tags=[1]"], "argument --attr: 'tags=[1]': an attribute value is"),
        (["list", "--limit", "-1"], "argument --limit: must be 0 or more, not -1"),
        (["list", "--offset", "x"], "argument --offset: 'x' is not a whole number"),
        (["list", "--since", "2024-01-02", "--until", "2024-01-01"], "end_time must be at or"),
        (["fork", "x", "--step", "0"], "argument --step: steps are numbered from 1"),
        (["fork", "x"], "the following arguments are required: --step"),
        (["show", " "], "a workflow ID must not be empty"),
        (["cancel"], "the following arguments are required: ID"),
        (["explode"], "invalid choice: 'explode'"),
        ([], "the following arguments are required: ACTION"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_mistakes_are_command_errors(args, message):
    with pytest.raises(CommandError) as caught:
        wf(*args)
    assert message in str(caught.value)


def test_exit_codes_from_the_shell():
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "dbos_workflows", *args],
            env=worker_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = run("list", "--prefix", "no-such-")
    assert (ok.returncode, ok.stdout) == (0, "No workflows match.\n"), ok.stderr
    unknown = run("show", "nope")
    assert unknown.returncode == 1
    assert "CommandError: No workflow with ID 'nope' exists." in unknown.stderr
    usage = run("list", "--status", "DONE")  # argparse's usage error, as in every Django command
    assert usage.returncode == 2 and "unknown status 'DONE'" in usage.stderr


# -- cancel, resume, fork, delete --------------------------------------------------------------


def crashed(workflow_id: str) -> None:
    """A PENDING workflow with one recorded step (its process "died")."""
    with simulate_crash(after_step=1), SetWorkflowID(workflow_id):
        iwf.two_steps(1)


@pytest.mark.django_db(transaction=True)
def test_cancel_then_resume():
    crashed("op-1")
    crashed("op-2")

    assert wf("cancel", "op-1", "op-2") == (
        "Cancelled op-1: CANCELLED.\nCancelled op-2: CANCELLED.\n"
    )
    assert DBOS.get_workflow_status("op-1").status == "CANCELLED"

    assert wf("resume", "op-1") == "Resumed op-1: SUCCESS.\n"  # waited for it
    assert DBOS.retrieve_workflow("op-1").get_result() == 2 + 4
    assert workflow_step_names("op-1") == ["double", "double"]
    (item,) = wf_json("resume", "op-2")
    assert (item["workflow_id"], item["status"]) == ("op-2", "SUCCESS")


def test_cancel_is_all_or_nothing():
    crashed("op-known")
    with pytest.raises(CommandError, match=r"No workflow with ID 'op-unknown' exists\."):
        wf("cancel", "op-known", "op-unknown")
    assert DBOS.get_workflow_status("op-known").status == "PENDING"


def test_cancel_json_and_finished_workflows_stay_as_they_are(three):
    listed = wf_json("cancel", "cmd-c", "cmd-a")
    assert [(i["workflow_id"], i["status"]) for i in listed] == [
        ("cmd-c", "CANCELLED"),
        ("cmd-a", "SUCCESS"),
    ]


@pytest.mark.django_db(transaction=True)
def test_fork_from_a_step_with_a_chosen_id():
    with SetWorkflowID("fork-src"):
        assert iwf.two_steps(5) == 10 + 12

    assert wf("fork", "fork-src", "--step", "2", "--id", "fork-new") == (
        "Forked fork-new from fork-src: SUCCESS.\n"
    )
    forked = DBOS.get_workflow_status("fork-new")
    assert (forked.forked_from, forked.output) == ("fork-src", 22)

    (item,) = wf_json("fork", "fork-src", "--step", "1")
    assert item["forked_from"] == "fork-src" and item["workflow_id"] != "fork-src"
    assert item["status"] == "SUCCESS"


def test_fork_past_the_last_step_is_a_command_error():
    with SetWorkflowID("fork-short"):
        iwf.two_steps(1)
    with pytest.raises(CommandError, match="start_step"):
        wf("fork", "fork-short", "--step", "9", "--id", "fork-never")
    assert DBOS.get_workflow_status("fork-never") is None


def test_delete_with_and_without_children():
    with SetWorkflowID("del-1"):
        iwf.parent_workflow(1)
    with SetWorkflowID("del-2"):
        iwf.parent_workflow(2)

    assert wf("delete", "del-1") == "Deleted del-1.\n"
    assert DBOS.get_workflow_status("del-1") is None
    assert DBOS.get_workflow_status("del-1-2") is not None  # its child stays

    assert wf_json("delete", "del-2", "--children") == {"deleted": ["del-2"], "children": True}
    assert DBOS.list_workflows(workflow_id_prefix="del-2") == []
    with pytest.raises(CommandError, match=r"No workflow with ID 'del-2' exists\."):
        wf("delete", "del-2")
