"""`/docs` (Swagger UI) and `/redoc` work without internet: in headless Chromium, with every
request that leaves the API refused, each page lists every operation of the API."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Route
from temporalio.client import Client

from core.persistence.db import Database
from tests.api_harness import api_settings, serving_api
from tests.browser import browser_page

OPERATION_METHODS = {"get", "put", "post", "delete", "patch"}
REDOC_FOOTER_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc 2 always tries this image in its "API docs by Redocly" footer and hides it when it
does not load: the one outside request the pages make, and nothing depends on it."""


async def test_docs_and_redoc_list_every_operation_from_local_assets(
    sqlite_db: Database, dev_client: Client, tmp_path: Path
) -> None:
    async with serving_api(sqlite_db, dev_client, api_settings(), with_workers=False) as api:
        schema = (await api.http().get("/openapi.json")).json()
        operations = {
            (method.upper(), path)
            for path, item in schema["paths"].items()
            for method in item
            if method in OPERATION_METHODS
        }
        assert len(operations) > 20
        requested: list[str] = []
        refused: list[str] = []

        async def offline(route: Route) -> None:
            url = route.request.url
            requested.append(url)
            if url.startswith((api.base_url, "data:", "blob:")):
                await route.continue_()
            else:
                refused.append(url)
                await route.abort("internetdisconnected")

        async with browser_page(tmp_path / "chromium") as page:
            await page.route("**/*", offline)

            await page.goto(f"{api.base_url}/docs")
            await page.locator(".opblock").first.wait_for(timeout=30_000)
            methods = await page.locator(".opblock-summary-method").all_inner_texts()
            paths = [
                await path.get_attribute("data-path")
                for path in await page.locator(".opblock-summary-path").all()
            ]
            assert set(zip(methods, paths, strict=True)) == operations

            await page.goto(f"{api.base_url}/redoc")
            await page.locator("[data-section-id^='operation/']").first.wait_for(timeout=30_000)
            sections = await page.locator("[data-section-id^='operation/']").count()
            assert sections == len(operations)
            assert await page.get_by_text("Orchestrator API").first.is_visible()

        assert set(refused) <= {REDOC_FOOTER_LOGO}, f"the docs pages reach outside: {refused}"
        assert f"{api.base_url}/docs-assets/swagger-ui-bundle.js" in requested
        assert f"{api.base_url}/docs-assets/redoc.standalone.js" in requested
