"""Notes between agents: `post_note`, `wait_for_note`, delivery into the next turn, status."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from temporalio.client import Client
from temporalio.worker import Replayer

from agents.conversation import build_messages, parse_notes, parse_peers, render_note
from agents.protocol import (
    ContentBlock,
    Message,
    ModelRequest,
    ModelResponse,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from agents.providers.anthropic import AnthropicProvider
from agents.roles import ROLES
from agents.tools import NoteContext
from cli.render import notes_caption, run_table
from core.contracts import (
    AgentNote,
    DeliveredNote,
    EventType,
    NoteDraft,
    RunState,
    RunStatus,
    TaskPlan,
    TaskState,
    TaskStatus,
    TurnKey,
    Usage,
)
from core.persistence import storage
from core.persistence.db import Database
from core.services.templates import load_template
from offline import OfflineProvider
from tests.api_harness import ApiHarness
from tests.conftest import production_converter
from tests.fakes.messages_api import FakeMessagesAPI
from tests.helpers import agent_tools, make_plan, run_to_end, started, wait_until
from workflows import notes as agent_notes
from workflows.dsl import compile_plan
from workflows.goal import GoalWorkflow

AT = datetime(2026, 1, 1, tzinfo=UTC)


def note(
    seq: int, to: str, from_task: str = "backend", from_role: str = "backend_engineer"
) -> AgentNote:
    return AgentNote(
        seq=seq,
        from_task=from_task,
        from_role=from_role,
        to=to,
        subject=f"subject {seq}",
        text=f"text {seq}",
        turn=0,
        at=AT,
    )


def sdlc_tasks() -> list[TaskPlan]:
    return compile_plan(load_template("sdlc", ROLES), goal="g", run_id="r", roles=ROLES).tasks


# --------------------------------------------------------------------------- who, to whom


def test_backend_and_frontend_are_each_others_peers_in_the_sdlc_plan() -> None:
    tasks = sdlc_tasks()
    assert agent_notes.peers(tasks, "backend") == {
        "frontend": "frontend_engineer",
        "data_science": "data_scientist",
    }
    assert agent_notes.peers(tasks, "frontend")["backend"] == "backend_engineer"
    # a chain has no peers: upstream is done, downstream reads the artifacts
    assert agent_notes.peers(tasks, "requirements") == {}
    assert agent_notes.peers(tasks, "code_review") == {}
    assert agent_notes.peers(tasks, "backend.review-tech_lead") == {}

    recipients = agent_notes.recipients(tasks)
    assert recipients[0] == "all"
    assert {"backend", "frontend", "frontend_engineer", "code_reviewer"} <= set(recipients)


def test_a_note_is_delivered_by_id_role_or_all_never_to_its_sender() -> None:
    notes = [
        note(1, "frontend"),
        note(2, "frontend_engineer"),
        note(3, "all"),
        note(4, "database"),
        note(5, "all", from_task="frontend", from_role="frontend_engineer"),
    ]
    delivered: dict[int, int] = {}
    got = agent_notes.deliver(
        notes, task_id="frontend", role="frontend_engineer", turn=0, delivered=delivered
    )
    assert [d.note.seq for d in got] == [1, 2, 3]
    assert delivered == {1: 0, 2: 0, 3: 0}


def test_a_note_keeps_the_turn_it_was_first_delivered_at() -> None:
    delivered: dict[int, int] = {}
    first = agent_notes.deliver(
        [note(1, "frontend")], task_id="frontend", role="r", turn=1, delivered=delivered
    )
    later = agent_notes.deliver(
        [note(1, "frontend"), note(2, "all")],
        task_id="frontend",
        role="r",
        turn=3,
        delivered=delivered,
    )
    assert [(d.note.seq, d.turn) for d in first] == [(1, 1)]
    assert [(d.note.seq, d.turn) for d in later] == [(1, 1), (2, 3)]


def test_posted_notes_continue_the_runs_sequence() -> None:
    drafts = [NoteDraft(to="all", subject="a", text="x"), NoteDraft(to="qa", subject="b", text="y")]
    made = agent_notes.posted(
        drafts, after=[note(4, "all")], from_task="t", from_role="r", turn=2, at=AT
    )
    assert [(n.seq, n.to, n.from_task, n.turn) for n in made] == [
        (5, "all", "t", 2),
        (6, "qa", "t", 2),
    ]


def test_a_waiting_agent_goes_on_when_the_note_comes_or_nobody_can_send_it() -> None:
    tasks = [
        TaskState(id="backend", role="backend_engineer", status=TaskStatus.RUNNING),
        TaskState(id="frontend", role="frontend_engineer", status=TaskStatus.RUNNING),
    ]

    def may_go_on(notes: list[AgentNote], sender: str | None, delivered: dict[int, int]) -> bool:
        return agent_notes.may_go_on(
            notes,
            tasks,
            task_id="frontend",
            role="frontend_engineer",
            delivered=delivered,
            sender=sender,
        )

    assert not may_go_on([], "backend", {})
    assert not may_go_on([], "backend_engineer", {})
    assert not may_go_on([note(1, "frontend")], "backend", {1: 0})  # already had that one
    assert may_go_on([note(1, "frontend")], "backend", {})
    assert may_go_on([note(1, "frontend")], None, {})
    assert not may_go_on([note(1, "database")], "backend", {})  # not for this task
    assert may_go_on([], "data_science", {})  # not running: nothing to wait for
    tasks[0].status = TaskStatus.COMPLETED
    assert may_go_on([], "backend", {})  # finished without a note


# --------------------------------------------------------------------------- the conversation


def answer(turn: int, tools: bool = True) -> ModelResponse:
    content: list[ContentBlock] = [TextBlock(text=f"turn {turn}")]
    if tools:
        content.append(ToolUseBlock(id=f"toolu_{turn}", name="list_files", input={}))
    return ModelResponse(
        id=f"msg_{turn}",
        model="m",
        content=content,
        stop_reason="tool_use" if tools else "end_turn",
        usage=Usage(),
    )


def results(turn: int) -> list[ContentBlock]:
    return [ToolResultBlock(tool_use_id=f"toolu_{turn}", content="(no files)")]


def assert_alternates(messages: list[Message]) -> None:
    assert messages[0].role == "user"
    assert [m.role for m in messages] == ["user", "assistant"] * (len(messages) // 2) + (
        ["user"] if len(messages) % 2 else []
    )
    for before, after in itertools.pairwise(messages):
        uses = {b.id for b in before.content if isinstance(b, ToolUseBlock)}
        answered = [b.tool_use_id for b in after.content if isinstance(b, ToolResultBlock)]
        assert set(answered) == uses
        # tool results first: Anthropic rejects text before them
        kinds = [isinstance(b, ToolResultBlock) for b in after.content]
        assert kinds == sorted(kinds, reverse=True)


def test_notes_go_into_the_user_message_of_the_turn_they_were_delivered_at() -> None:
    notes = [
        DeliveredNote(note=note(1, "frontend"), turn=0),
        DeliveredNote(note=note(2, "all"), turn=2),
    ]
    messages = build_messages(
        "the task",
        [answer(0), answer(1)],
        [results(0), results(1)],
        notes=notes,
        peers={"backend": "backend_engineer"},
    )
    assert_alternates(messages)
    first = [b.text for b in messages[0].content if isinstance(b, TextBlock)]
    assert first[0] == "the task"
    assert "- backend (backend_engineer)" in first[1]
    assert first[2] == render_note(notes[0].note)
    assert parse_peers("\n".join(first)) == {"backend": "backend_engineer"}
    # turn 1's tool results carry no note; turn 2's message (results of turn 1) does, after them
    assert all(isinstance(b, ToolResultBlock) for b in messages[2].content)
    assert isinstance(messages[4].content[0], ToolResultBlock)
    assert messages[4].content[1] == TextBlock(text=render_note(notes[1].note))
    assert [(n.seq, n.from_task, n.subject, n.text) for n in parse_notes(messages)] == [
        (1, "backend", "subject 1", "text 1"),
        (2, "backend", "subject 2", "text 2"),
    ]


def test_a_later_note_leaves_the_earlier_turns_unchanged() -> None:
    early = [DeliveredNote(note=note(1, "frontend"), turn=1)]
    at_turn_2 = build_messages("task", [answer(0), answer(1)], [results(0), results(1)], early)
    at_turn_3 = build_messages(
        "task",
        [answer(0), answer(1), answer(2)],
        [results(0), results(1), results(2)],
        [*early, DeliveredNote(note=note(2, "all"), turn=3)],
    )
    assert at_turn_3[: len(at_turn_2)] == at_turn_2
    assert_alternates(at_turn_3)
    assert at_turn_3[-1].content[-1] == TextBlock(text=render_note(note(2, "all")))


def test_a_note_for_a_turn_without_tool_results_gets_a_message_of_its_own() -> None:
    delivered = [DeliveredNote(note=note(1, "all"), turn=1)]
    messages = build_messages("task", [answer(0, tools=False)], [], delivered)
    assert_alternates(messages)
    assert messages[-1] == Message(
        role="user", content=[TextBlock(text=render_note(delivered[0].note))]
    )
    # without notes nothing changes: the conversation is as it always was
    assert build_messages("task", [answer(0, tools=False)], []) == messages[:2]


# --------------------------------------------------------------------------- the tools


async def test_post_note_checks_its_recipient_and_fields(sqlite_db: Database) -> None:
    context = NoteContext(
        task_id="backend", recipients=frozenset({"all", "backend", "frontend", "frontend_engineer"})
    )
    key = TurnKey(run_id="r1", workflow_id="run-r1", task_id="backend", turn=0)
    async with storage.turn_workspace(sqlite_db, key, role="backend_engineer", model="m") as ws:
        tool = agent_tools(ws, "backend_engineer")
        ok = await tool(
            "post_note", {"to": "frontend", "subject": "API", "text": "GET /tasks"}, context
        )
        unknown = await tool("post_note", {"to": "nobody", "subject": "API", "text": "x"}, context)
        itself = await tool("post_note", {"to": "backend", "subject": "a", "text": "x"}, context)
        empty = await tool("post_note", {"to": "all", "subject": " ", "text": "x"}, context)
        too_long = await tool(
            "post_note", {"to": "all", "subject": "a", "text": "x" * 20_001}, context
        )
        off = await tool("post_note", {"to": "all", "subject": "a", "text": "x"})
        wait = await tool("wait_for_note", {"from": "frontend_engineer"}, context)
        bad_wait = await tool("wait_for_note", {"from": "qa"}, context)
    assert not ok.is_error and ok.note is not None
    assert (ok.note.to, ok.note.subject, ok.note.text) == ("frontend", "API", "GET /tasks")
    for outcome, message in [
        (unknown, "unknown recipient 'nobody'; use a task id, a role or all: all, frontend,"),
        (itself, "a note to yourself"),
        (empty, "needs 'subject'"),
        (too_long, "within 20000"),
        (off, "not available in this run"),
        (bad_wait, "unknown sender 'qa'"),
    ]:
        assert outcome.is_error and message in outcome.content, outcome.content
        assert outcome.note is None
    assert not wait.is_error and wait.wait is not None
    assert (wait.wait.sender, wait.wait.timeout_seconds) == ("frontend_engineer", 600.0)


# --------------------------------------------------------------------------- whole runs


class RecordingOffline(OfflineProvider):
    """The offline model, keeping every request it was sent (what the agents saw)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return await super().complete(request)


def turn_of(request: ModelRequest) -> int:
    return sum(m.role == "assistant" for m in request.messages)


def shape(messages: list[Message]) -> list[list[tuple[str, str]]]:
    """Messages without cache breakpoints, which move to the newest block every turn."""
    return [
        [
            (
                b.type,
                b.text
                if isinstance(b, TextBlock)
                else getattr(b, "id", getattr(b, "tool_use_id", "")),
            )
            for b in m.content
        ]
        for m in messages
    ]


async def test_the_backend_tells_the_frontend_its_api_contract(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan()
    provider = RecordingOffline()
    async with started(dev_client, sqlite_db, provider, plan) as handle:

        async def note_posted() -> bool:
            state = await handle.query("status", result_type=RunState)
            return state is not None and bool(state.notes)

        await wait_until(note_posted)
        live = await handle.query("status", result_type=RunState)
        state = await handle.result()
        history = await handle.fetch_history()

    # the notes' workflow code is deterministic: its own history replays
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=production_converter())
    assert (await replayer.replay_workflow(history)).replay_failure is None

    assert state.status == RunStatus.COMPLETED, state.error
    [posted] = live.notes
    assert (posted.seq, posted.from_task, posted.from_role, posted.to) == (
        1,
        "backend",
        "backend_engineer",
        "frontend",
    )
    assert posted.subject == "API contract" and "GET /tasks" in posted.text
    assert state.notes == live.notes
    assert state.task("frontend").delivered_notes == {1: 1}
    assert "#1 backend → frontend: API contract" in notes_caption(state.notes)
    events = [e for e in state.events if e.type == EventType.NOTE_POSTED]
    assert [(e.task, e.data["to"], e.data["seq"]) for e in events] == [("backend", "frontend", 1)]

    # the frontend waited for the contract, got it with its next turn, and kept it there
    frontend = sorted((r for r in provider.requests if r.role == "frontend_engineer"), key=turn_of)
    assert [turn_of(r) for r in frontend] == [0, 1, 2]
    [task_message] = frontend[0].messages
    told = "\n".join(b.text for b in task_message.content if isinstance(b, TextBlock))
    assert parse_peers(told) == {"backend": "backend_engineer", "data_science": "data_scientist"}
    assert parse_notes(frontend[0].messages) == []
    wait_call = frontend[1].messages[1].content[-1]
    assert isinstance(wait_call, ToolUseBlock) and wait_call.name == "wait_for_note"
    delivered = frontend[1].messages[2].content
    assert isinstance(delivered[0], ToolResultBlock)
    assert isinstance(delivered[1], TextBlock) and delivered[1].text.startswith(
        '<note seq="1" from="backend" role="backend_engineer" subject="API contract">'
    )
    assert shape(frontend[2].messages[:3]) == shape(frontend[1].messages)
    assert [n.seq for n in parse_notes(frontend[2].messages)] == [1]
    # the backend, which posted it, never got its own note
    assert all(
        parse_notes(r.messages) == [] for r in provider.requests if r.role == "backend_engineer"
    )

    files = {a.path: a.content for a in await storage.latest_artifacts(sqlite_db, plan.run_id)}
    app_js = files["frontend/app.js"]
    assert '// API contract from backend (backend_engineer), note #1 "API contract":' in app_js
    assert "//   GET /tasks/{id}" in app_js
    summary = state.task("frontend").summary
    assert "API contract from backend (backend_engineer), used in the frontend" in summary
    assert "Posted note 'API contract' to frontend." in state.task("backend").summary


async def test_a_note_to_an_unknown_recipient_is_an_error_the_agent_sees(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan(tasks=[TaskPlan(id="solo", role="backend_engineer", max_turns=4)])
    with FakeMessagesAPI() as api:
        api.enqueue_tool_use("post_note", {"to": "nobody", "subject": "hi", "text": "hello"})
        api.enqueue_text("Done.")
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        state = await run_to_end(dev_client, sqlite_db, provider, plan)
        requests = [r.json for r in api.requests if r.path == "/v1/messages"]

    assert state.status == RunStatus.COMPLETED, state.error
    assert state.notes == [] and state.task("solo").next_turn == 2  # went on after the error
    offered = [tool["name"] for tool in requests[0]["tools"]]
    assert "post_note" in offered and "wait_for_note" in offered
    result: dict[str, Any] = requests[1]["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["content"] == (
        "post_note: unknown recipient 'nobody'; use a task id, a role or all: all, backend_engineer"
    )


async def test_the_status_endpoint_and_the_cli_table_show_the_notes(api: ApiHarness) -> None:
    tenant = await api.tenant()
    http = api.http(tenant.headers)
    response = await http.post("/runs", json={"goal": "Build a bookstore inventory API"})
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]

    async def closed() -> bool:
        progress = (await http.get(f"/runs/{run_id}/status")).json()
        return progress["status"] != "running" and progress["source"] == "database"

    await wait_until(closed, timeout=180)
    progress = (await http.get(f"/runs/{run_id}/status")).json()
    assert progress["status"] == "completed"
    [posted] = progress["notes"]
    assert (posted["from_task"], posted["to"], posted["subject"]) == (
        "backend",
        "frontend",
        "API contract",
    )
    assert "GET /books" in posted["text"]

    state = RunState.model_validate({**progress, "events": []})
    console = Console(record=True, width=160)
    console.print(run_table(state))
    shown = console.export_text()
    assert "notes (1)" in shown
    assert "#1 backend → frontend: API contract — Bookstore" in shown
