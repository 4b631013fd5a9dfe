"""The provider tests' fixtures: here `api` is the loopback fake of a wire format (not the
REST harness of `tests/api_harness.py`) and `provider` the adapter connected to it.

`wire` runs a test on both wire formats; a module about one provider overrides it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.agents.wire_formats import WIRES, Adapter, Wire
from tests.fakes.loopback import LoopbackAPI


@pytest.fixture(params=WIRES, ids=repr)
def wire(request: pytest.FixtureRequest) -> Wire:
    assert isinstance(request.param, Wire)
    return request.param


@pytest.fixture
def api(wire: Wire) -> Iterator[LoopbackAPI]:
    with wire.fake() as fake:
        yield fake


@pytest.fixture
async def provider(wire: Wire, api: LoopbackAPI) -> AsyncIterator[Adapter]:
    adapter = wire.connect(api.base_url)
    yield adapter
    await adapter.aclose()
