"""What the CLI tests share: an embedded stack of each test's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import own_stack


@pytest.fixture
def isolated(tmp_path: Path) -> dict[str, str]:
    """A data directory and ports of its own, so the test never meets another stack."""
    return own_stack(tmp_path / "data")
