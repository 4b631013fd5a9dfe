"""Importing a repository into a snapshot (core/services/repositories.py), on both databases,
from a repository made with the real `git`."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.infrastructure.git import git, git_text
from core.infrastructure.settings import RepositorySettings
from core.persistence.db import Database, RepositoryFile, RepositorySnapshot
from core.persistence.repositories import get_snapshot, snapshot_files
from core.services.repositories import (
    PYTEST,
    RepositoryError,
    detect_test_command,
    import_archive,
    import_local,
    import_registered,
)
from tests.core.services.repository_fixture import (
    CALC_V1,
    CALC_V2,
    FIRST_FILES,
    LOGO,
    SECOND_FILES,
    SUBMODULE_COMMIT,
    UserRepo,
    make_user_repo,
)

SETTINGS = RepositorySettings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def user_repo(tmp_path: Path) -> UserRepo:
    return await make_user_repo(tmp_path / "user-repo")


def limits(**values: int) -> RepositorySettings:
    return SETTINGS.model_copy(update=values)


async def count(db: Database, model: type[RepositorySnapshot] | type[RepositoryFile]) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def files_of(db: Database, snapshot_id: str) -> dict[str, RepositoryFile]:
    return {file.path: file for file in await snapshot_files(db, snapshot_id)}


async def test_head_is_the_tracked_files_of_the_commit(
    any_db: Database, user_repo: UserRepo
) -> None:
    before = await user_repo.state()
    git_dir = {p: p.stat().st_mtime_ns for p in (user_repo.path / ".git").rglob("*")}
    ref = await import_local(any_db, SETTINGS, "acme", user_repo.path)
    # Nothing in .git was written (not even the index), then: status, HEAD, edits, refs.
    assert {p: p.stat().st_mtime_ns for p in (user_repo.path / ".git").rglob("*")} == git_dir
    assert await user_repo.state() == before
    assert ref.commit == user_repo.second
    assert ref.snapshot_id == hashlib.sha256(f"acme\0{user_repo.second}".encode()).hexdigest()
    assert ref.source == f"local:{user_repo.path.resolve()}"
    assert (ref.ref, ref.test_command, ref.binaries) == ("HEAD", PYTEST, 1)
    files = await files_of(any_db, ref.snapshot_id)
    # Ignored (secret.env, build/), untracked (notes.txt) and uncommitted edits stay out.
    assert set(files) == SECOND_FILES
    assert files["calc/core.py"].data == CALC_V2.encode()
    assert (
        files["pyproject.toml"].data is not None and b"staged" not in files["pyproject.toml"].data
    )
    assert (files["logo.png"].binary, files["logo.png"].data) == (True, LOGO)
    assert (files["core_link.py"].mode, files["core_link.py"].data) == ("120000", b"calc/core.py")
    assert files["run.sh"].mode == "100755"
    gitlink = files["vendor/lib"]
    assert (gitlink.mode, gitlink.blob, gitlink.data) == ("160000", SUBMODULE_COMMIT, None)
    assert ref.files == len(SECOND_FILES)
    assert ref.bytes == sum(file.size for file in files.values())
    text = [file.path for file in await snapshot_files(any_db, ref.snapshot_id, text_only=True)]
    assert text == sorted(SECOND_FILES - {"logo.png", "core_link.py", "vendor/lib"})


async def test_the_snapshot_keeps_the_commit_and_tree(
    any_db: Database, user_repo: UserRepo
) -> None:
    ref = await import_local(any_db, SETTINGS, "acme", user_repo.path)
    snapshot = await get_snapshot(any_db, ref.snapshot_id, "acme")
    assert snapshot is not None
    raw = await git(["cat-file", "commit", user_repo.second], cwd=user_repo.path)
    assert snapshot.commit_object == raw.decode()
    assert snapshot.tree == await git_text(["rev-parse", "HEAD^{tree}"], cwd=user_repo.path)
    assert await get_snapshot(any_db, ref.snapshot_id, "other-tenant") is None
    for file in await snapshot_files(any_db, ref.snapshot_id):
        if file.mode != "160000":  # each blob id is the hash of the stored bytes
            header = f"blob {len(file.data or b'')}\0".encode()
            assert hashlib.sha1(header + (file.data or b"")).hexdigest() == file.blob


async def test_an_earlier_commit_has_its_own_files(any_db: Database, user_repo: UserRepo) -> None:
    ref = await import_local(any_db, SETTINGS, "acme", user_repo.path, "HEAD~1")
    assert (ref.commit, ref.ref, ref.binaries) == (user_repo.first, "HEAD~1", 0)
    files = await files_of(any_db, ref.snapshot_id)
    assert set(files) == FIRST_FILES
    assert files["calc/core.py"].data == CALC_V1.encode()


async def test_a_commit_is_stored_once_per_tenant(any_db: Database, user_repo: UserRepo) -> None:
    first = await import_local(any_db, SETTINGS, "acme", user_repo.path)
    again = await import_local(any_db, SETTINGS, "acme", user_repo.path, "main")
    assert again.snapshot_id == first.snapshot_id and again.ref == "main"
    assert (await count(any_db, RepositorySnapshot), await count(any_db, RepositoryFile)) == (
        1,
        len(SECOND_FILES),
    )
    other = await import_local(any_db, SETTINGS, "globex", user_repo.path)
    assert other.snapshot_id != first.snapshot_id and other.commit == first.commit
    assert await count(any_db, RepositorySnapshot) == 2
    assert await count(any_db, RepositoryFile) == 2 * len(SECOND_FILES)
    assert set(await files_of(any_db, other.snapshot_id)) == SECOND_FILES


async def test_size_limits_name_the_figures_and_the_setting(
    any_db: Database, user_repo: UserRepo
) -> None:
    with pytest.raises(RepositoryError, match=r"has 9 files at .*REPOSITORY_MAX_FILES=3$"):
        await import_local(any_db, limits(max_files=3), "acme", user_repo.path)
    with pytest.raises(RepositoryError, match=r"bytes of files .*REPOSITORY_MAX_BYTES=100$"):
        await import_local(any_db, limits(max_bytes=100), "acme", user_repo.path)
    assert await count(any_db, RepositorySnapshot) == 0
    ref = await import_local(any_db, limits(max_file_bytes=60), "acme", user_repo.path)
    files = await files_of(any_db, ref.snapshot_id)
    assert files["calc/core.py"].binary and files["calc/core.py"].data == CALC_V2.encode()
    assert not files["calc/__init__.py"].binary


async def test_what_cannot_be_imported_is_said_in_one_line(
    sqlite_db: Database, user_repo: UserRepo, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    cases: list[tuple[Path, str, str]] = [
        (plain, "HEAD", "is not a git repository"),
        (tmp_path / "missing", "HEAD", "no such folder"),
        (user_repo.path, "no-such-branch", "has no commit at ref 'no-such-branch'"),
        (user_repo.path, "--output=/tmp/x", "is not a ref"),
    ]
    for path, ref, message in cases:
        with pytest.raises(RepositoryError, match=message) as caught:
            await import_local(sqlite_db, SETTINGS, "acme", path, ref)
        assert "\n" not in str(caught.value)


async def test_registered_names_hide_the_server_path(
    sqlite_db: Database, user_repo: UserRepo
) -> None:
    settings = SETTINGS.model_copy(update={"registered": {"calc": str(user_repo.path)}})
    ref = await import_registered(sqlite_db, settings, "acme", "calc", "HEAD~1")
    assert (ref.source, ref.commit) == ("registered:calc", user_repo.first)
    with pytest.raises(RepositoryError, match="no registered repository is named 'etc'"):
        await import_registered(sqlite_db, settings, "acme", "etc")
    with pytest.raises(RepositoryError) as caught:
        await import_registered(sqlite_db, settings, "acme", "calc", "nope")
    assert str(user_repo.path) not in str(caught.value)
    assert "registered:calc" in str(caught.value)


async def test_the_outline_hook_gets_the_text_files(
    sqlite_db: Database, user_repo: UserRepo
) -> None:
    seen: list[Mapping[str, str]] = []

    def outline(files: Mapping[str, str]) -> str:
        seen.append(files)
        return json.dumps(sorted(files))

    ref = await import_local(sqlite_db, SETTINGS, "acme", user_repo.path, outline=outline)
    snapshot = await get_snapshot(sqlite_db, ref.snapshot_id)
    assert snapshot is not None and snapshot.outline is not None
    assert json.loads(snapshot.outline) == sorted(
        SECOND_FILES - {"logo.png", "core_link.py", "vendor/lib"}
    )
    assert seen[0]["calc/core.py"] == CALC_V2
    await import_local(sqlite_db, SETTINGS, "acme", user_repo.path, outline=outline)
    assert len(seen) == 1  # a stored snapshot is not parsed again


# --------------------------------------------------------------------------- uploads


async def test_tar_gz_and_zip_of_one_tree_are_one_snapshot(
    any_db: Database, user_repo: UserRepo
) -> None:
    refs = []
    for fmt in ("tar.gz", "zip"):
        data = await git(
            ["archive", f"--format={fmt}", "--prefix=calc-main/", "HEAD"], cwd=user_repo.path
        )
        refs.append(await import_archive(any_db, SETTINGS, "acme", data))
    assert refs[0].snapshot_id == refs[1].snapshot_id  # the same content, the same commit
    assert refs[0].source == "upload" and refs[0].test_command == PYTEST
    assert await count(any_db, RepositorySnapshot) == 1
    uploaded = await files_of(any_db, refs[0].snapshot_id)
    local = await files_of(
        any_db, (await import_local(any_db, SETTINGS, "acme", user_repo.path)).snapshot_id
    )
    # The wrapper folder is stripped; `git archive` leaves a submodule out as an empty folder.
    assert set(uploaded) == SECOND_FILES - {"vendor/lib"}
    for path, file in uploaded.items():
        assert (file.mode, file.blob, file.binary) == (
            local[path].mode,
            local[path].blob,
            local[path].binary,
        )


async def test_an_upload_honours_its_gitignore_and_drops_dot_git(sqlite_db: Database) -> None:
    members = {
        ".gitignore": b"*.log\n",
        "app.py": b"print('hi')\n",
        "debug.log": b"noise\n",
        ".git/config": b"[core]\n\tfsmonitor = touch /tmp/pwned\n",
        "sub/.git": b"gitdir: /etc\n",
    }
    data = zip_of(members)
    ref = await import_archive(sqlite_db, SETTINGS, "acme", data)
    assert set(await files_of(sqlite_db, ref.snapshot_id)) == {".gitignore", "app.py"}
    snapshot = await get_snapshot(sqlite_db, ref.snapshot_id)
    assert snapshot is not None
    assert "author orchestrator upload <upload@orchestrator.invalid> 946684800 +0000" in (
        snapshot.commit_object
    )
    assert (await import_archive(sqlite_db, SETTINGS, "globex", data)).commit == ref.commit


async def test_refused_uploads_say_why(sqlite_db: Database) -> None:
    cases = [
        (b"not an archive at all", SETTINGS, "not a tar, tar.gz or zip"),
        (zip_of({"../escape.py": b"x"}), SETTINGS, "'..' component"),
        (zip_of({"a.py": b"1", "b.py": b"2"}), limits(max_files=1), "REPOSITORY_MAX_FILES=1"),
        (zip_of({"big.txt": b"0" * 5000}), limits(max_bytes=1000), "REPOSITORY_MAX_BYTES=1000"),
        (zip_of({"a.py": b"1" * 5000}), limits(max_archive_bytes=100), "ARCHIVE_BYTES=100"),
        (zip_of({"debug.log": b"x", ".gitignore": b"*\n"}), SETTINGS, "holds no files"),
    ]
    for data, settings, message in cases:
        with pytest.raises(RepositoryError, match=message):
            await import_archive(sqlite_db, settings, "acme", data)
    assert await count(sqlite_db, RepositorySnapshot) == 0


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def tar_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


# --------------------------------------------------------------------------- test command


@pytest.mark.parametrize(
    ("files", "command"),
    [
        (
            {"Makefile": b"lint:\n\truff .\n\ntest: lint\n\tpytest\n", "pytest.ini": b""},
            "make test",
        ),
        ({"Makefile": b"unit test: build\n\t./run\n"}, "make test"),
        ({"Makefile": b"test := yes\nall:\n\techo\n", "package.json": b"{}"}, None),
        ({"pyproject.toml": b"[tool.pytest.ini_options]\n"}, PYTEST),
        ({"setup.cfg": b"[tool:pytest]\n"}, PYTEST),
        ({"tox.ini": b"[testenv]\ncommands = pytest\n"}, PYTEST),
        ({"pytest.ini": b"[pytest]\n"}, PYTEST),
        ({"pkg/tests/test_api.py": b"", "pyproject.toml": b"[project]\n"}, PYTEST),
        ({"package.json": b'{"scripts": {"test": "jest"}}', "tests/test_x.py": b""}, PYTEST),
        ({"package.json": b'{"scripts": {"test": "jest"}}'}, "npm test"),
        ({"package.json": b'{"scripts": {"test": "echo \\"Error: no test specified\\""}}'}, None),
        ({"package.json": b"not json"}, None),
        ({"src/main.rs": b"fn main() {}"}, None),
    ],
)
def test_the_test_command_is_detected(files: dict[str, bytes], command: str | None) -> None:
    assert detect_test_command(files) == command


async def test_a_tar_upload_without_a_wrapper_keeps_its_layout(sqlite_db: Database) -> None:
    ref = await import_archive(
        sqlite_db, SETTINGS, "acme", tar_of({"src/app.py": b"x = 1\n", "README.md": b"# app\n"})
    )
    assert set(await files_of(sqlite_db, ref.snapshot_id)) == {"src/app.py", "README.md"}
    assert ref.test_command is None
