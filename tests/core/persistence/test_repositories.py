"""Repository snapshots on both databases: stored once per tenant and commit, even when two
imports race, and read back in path order."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from core.persistence.db import Database, RepositoryFile, RepositorySnapshot
from core.persistence.repositories import (
    get_snapshot,
    snapshot_files,
    snapshot_ref,
    store_snapshot,
)


def snapshot(tenant: str, commit: str = "c" * 40, source: str = "upload") -> RepositorySnapshot:
    return RepositorySnapshot(
        id=f"{tenant}-{commit[:8]}",
        tenant=tenant,
        commit=commit,
        tree="t" * 40,
        commit_object="tree " + "t" * 40 + "\n\nmessage\n",
        ref="HEAD",
        source=source,
        test_command="make test",
        files=4,
        bytes=9,
        binaries=1,
    )


def files(data: bytes = b"x") -> list[RepositoryFile]:
    rows = [
        ("src/z.py", "100644", False, data),
        ("README.md", "100644", False, b"# r\n"),
        ("logo.png", "100644", True, b"\x00\x01"),
        ("src/a.py", "100755", False, b"#!\n"),
        ("link", "120000", False, b"src/a.py"),
        ("vendor/lib", "160000", False, None),
    ]
    return [
        RepositoryFile(
            snapshot_id="",
            path=path,
            mode=mode,
            blob="b" * 40,
            size=len(raw or b""),
            binary=binary,
            data=raw,
        )
        for path, mode, binary, raw in rows
    ]


async def rows(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        counts = [
            (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (RepositorySnapshot, RepositoryFile)
        ]
    return counts[0], counts[1]


async def test_a_commit_is_stored_once_and_the_first_write_wins(any_db: Database) -> None:
    stored = await store_snapshot(any_db, snapshot("acme"), files())
    assert stored.source == "upload"
    again = await store_snapshot(any_db, snapshot("acme", source="local:/x"), files(b"changed"))
    assert (again.id, again.source) == (stored.id, "upload")
    assert await rows(any_db) == (1, 6)
    read = await snapshot_files(any_db, stored.id)
    assert [f.path for f in read] == [
        "README.md",
        "link",
        "logo.png",
        "src/a.py",
        "src/z.py",
        "vendor/lib",
    ]
    assert next(f for f in read if f.path == "src/z.py").data == b"x"
    assert next(f for f in read if f.path == "vendor/lib").data is None
    text = await snapshot_files(any_db, stored.id, text_only=True)
    assert [f.path for f in text] == ["README.md", "src/a.py", "src/z.py"]


async def test_racing_imports_store_one_snapshot(any_db: Database) -> None:
    results = await asyncio.gather(
        *(store_snapshot(any_db, snapshot("acme"), files()) for _ in range(4))
    )
    assert {result.id for result in results} == {"acme-cccccccc"}
    assert await rows(any_db) == (1, 6)


async def test_each_tenant_has_its_own(any_db: Database) -> None:
    await store_snapshot(any_db, snapshot("acme"), files())
    await store_snapshot(any_db, snapshot("globex"), files())
    assert await rows(any_db) == (2, 12)
    assert await get_snapshot(any_db, "acme-cccccccc", "globex") is None
    found = await get_snapshot(any_db, "acme-cccccccc", "acme")
    assert found is not None and await get_snapshot(any_db, "acme-cccccccc") is not None
    ref = snapshot_ref(found)
    assert (ref.snapshot_id, ref.commit, ref.test_command, ref.files, ref.binaries) == (
        "acme-cccccccc",
        "c" * 40,
        "make test",
        4,
        1,
    )
    assert await get_snapshot(any_db, "no-such-id") is None


async def test_many_files_are_written_in_batches(any_db: Database) -> None:
    many = [
        RepositoryFile(
            snapshot_id="", path=f"f{i:05}.txt", mode="100644", blob="b" * 40, size=1, data=b"x"
        )
        for i in range(1234)
    ]
    stored = await store_snapshot(any_db, snapshot("acme"), many)
    assert len(await snapshot_files(any_db, stored.id)) == 1234
