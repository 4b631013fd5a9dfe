"""What the repository-map figures of `bench.context` rely on: a generated repository of
~200 parseable Python files, the same every time, and a map request that stays in budget."""

from __future__ import annotations

from agents.context import UpstreamFile
from agents.repomap import build_outline, render_map
from bench.context import MAP_GOAL, MAP_TARGET, MAP_TASK, first_request_tokens, synthetic_repository


def test_the_generated_repository_is_200_parseable_files_every_time() -> None:
    files = synthetic_repository()
    assert files == synthetic_repository()
    assert 190 <= len(files) <= 220
    outline = build_outline(files)
    modules = [f for f in outline.files if f.path.startswith("shop/") and f.lines > 20]
    assert len(modules) == 90 and all(len(f.symbols) == 6 for f in modules)
    [target] = [f for f in outline.files if f.path == MAP_TARGET]
    assert [s.decorators for s in target.symbols[2:3]] == [
        ["router.post('/orders/{item_id}/checkout')"]
    ]


def test_the_map_request_is_a_fraction_of_the_whole_files_request() -> None:
    files = synthetic_repository()
    outline = build_outline(files)
    for budget in (30, 300, 1000, 2000, 8000, 50_000):
        assert len(render_map(outline, f"{MAP_GOAL}\n{MAP_TASK}", budget)) <= budget * 4
    text = render_map(outline, f"{MAP_GOAL}\n{MAP_TASK}", 4000)
    assert len(text) <= 16_000 and f"### {MAP_TARGET} " in text
    whole = first_request_tokens([UpstreamFile(p, "repository", c) for p, c in files.items()])
    mapped = first_request_tokens([UpstreamFile("repository-map.md", "repository", text)])
    baseline = first_request_tokens([])
    assert mapped - baseline <= 4_400 < 100_000 < whole - baseline
