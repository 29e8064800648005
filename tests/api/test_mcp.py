"""The MCP server, driven by the MCP SDK's own client over both transports: `glossary mcp` as
a subprocess (stdio) and /mcp on a real uvicorn (streamable HTTP). Both run experiments on
real worker processes (the real engine, small configs); over HTTP through the app's own
DemoRunner, so the web demo answers the same config from the cache the agent's run filled."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult, TextContent, TextResourceContents

from app.agents.over_http import transport_security
from app.config import Settings
from app.main import create_app
from tests.conftest import LM_CACHE_DIR, PATIENCE_S, ROOT, make_settings
from tests.live import serving
from tests.worker_engines import HELD, gate

TOOLS = {"search_terms", "get_term", "list_experiments", "run_experiment"}
SMALL = {"depth": 4, "width": 8, "steps": 10, "batch_size": 8, "seed": 3}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real corpus; the first server builds its database."""
    root = tmp_path_factory.mktemp("mcp")
    shutil.copytree(ROOT / "data", root / "data", ignore=shutil.ignore_patterns("*.db*", "cache"))
    return root


def settings_for(site: Path, **overrides: object) -> Settings:
    return make_settings(
        site, site / "data", database_url=f"sqlite:///{site / 'glossary.db'}", **overrides
    )


@pytest.fixture(scope="module")
def web(site: Path) -> Iterator[str]:
    """A real uvicorn with one real demo worker."""
    with serving(create_app(settings_for(site, demo_workers=1))) as url:
        yield url


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, PATIENCE_S))


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def stdio_server(site: Path) -> StdioServerParameters:
    env = dict(
        os.environ,
        GLOSSARY_DATABASE_URL=f"sqlite:///{site / 'glossary.db'}",
        GLOSSARY_DATA_DIR=str(site / "data"),
        GLOSSARY_DEMO_WORKERS="1",
        GLOSSARY_DEMO_WARMUP="false",
        GLOSSARY_DEMO_DEVICE="cpu",
        GLOSSARY_LM_START="false",
        GLOSSARY_CACHE_DIR=str(LM_CACHE_DIR),
    )
    command = str(Path(sys.executable).with_name("glossary"))
    return StdioServerParameters(command=command, args=["mcp"], env=env, cwd=str(site))


async def exercise(client: Client, api: httpx.AsyncClient) -> dict[str, Any]:
    """Every tool and the resources, checked against the HTTP API; returns the run's result."""
    tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for tool in tools:  # every argument is described for the agent
        assert tool.description
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), (tool.name, name)

    found = await client.call_tool("search_terms", {"query": "skip connections", "limit": 5})
    assert not found.is_error, text_of(found)
    assert found.structured_content is not None
    assert found.structured_content["hits"][0]["slug"] == "residual-connection"
    web_search = (await api.get("/api/search", params={"q": "skip connections", "limit": 5})).json()
    assert [h["slug"] for h in found.structured_content["hits"]] == [
        h["slug"] for h in web_search["hits"]
    ]

    term = await client.call_tool("get_term", {"slug": "skip-connection"})  # a synonym
    assert not term.is_error, text_of(term)
    assert term.structured_content is not None
    assert term.structured_content["slug"] == "residual-connection"
    twin = (await api.get("/api/terms/residual-connection")).json()
    assert term.structured_content["definition"] == twin["definition"]
    assert term.structured_content["synonyms"] == twin["synonyms"]
    missing = await client.call_tool("get_term", {"slug": "no-such-term-here"})
    assert missing.is_error and "No term 'no-such-term-here'" in text_of(missing)

    listed = await client.call_tool("list_experiments", {})
    presets = (await api.get("/api/demo/presets")).json()
    assert listed.structured_content is not None
    assert listed.structured_content["count"] == len(presets)
    assert [e["name"] for e in listed.structured_content["experiments"]] == [
        p["name"] for p in presets
    ]

    wrong = await client.call_tool("run_experiment", {"preset": "no-such-experiment"})
    refused = await api.get("/api/demo", params={"preset": "no-such-experiment"})
    assert wrong.is_error and refused.status_code == 422
    assert refused.json()["message"] in text_of(wrong)
    out_of_range = await client.call_tool(
        "run_experiment", {"preset": "residual-vs-plain", "params": {"depth": 100_000}}
    )
    refused = await api.get("/api/demo", params={"preset": "residual-vs-plain", "depth": 100_000})
    assert out_of_range.is_error and refused.status_code == 422
    assert refused.json()["message"] in text_of(out_of_range)

    total = (await api.get("/api/terms", params={"limit": 1})).json()["total"]
    resources = (await client.list_resources()).resources
    assert len(resources) == total == len({r.uri for r in resources})
    assert all(str(r.uri).startswith("glossary://terms/") for r in resources)
    read = await client.read_resource("glossary://terms/skip-connection")
    content = read.contents[0]
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == "application/json"
    assert '"title": "Residual Connection"' in content.text

    reported: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, total, message))

    ran = await client.call_tool(
        "run_experiment",
        {"preset": "residual-vs-plain", "params": SMALL},
        progress_callback=on_progress,
    )
    assert not ran.is_error, text_of(ran)
    result = ran.structured_content
    assert result is not None
    assert result["config"]["depth"] == SMALL["depth"] and result["variants"]
    assert {"holds", "statement", "measured"} <= set(result["claims"][0])
    assert result["source"] == "computed"
    assert reported and reported[-1][0] == reported[-1][1] == SMALL["steps"]
    return dict(result)


def the_api_run(api_url: str) -> dict[str, Any]:
    response = httpx.get(
        f"{api_url}/api/demo", params={"preset": "residual-vs-plain", **SMALL}, timeout=PATIENCE_S
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_streamable_http_serves_every_tool_through_the_web_demos_runner(web: str) -> None:
    async def scenario() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=web) as api, Client(f"{web}/mcp") as client:
            return await exercise(client, api)

    result = run(scenario())
    # The same runner: the web demo answers the agent's config from the cache it filled.
    web_run = the_api_run(web)
    assert web_run["source"] == "cache"
    assert web_run["variants"] == result["variants"]
    assert [c["holds"] for c in web_run["claims"]] == [c["holds"] for c in result["claims"]]
    assert result["full_result"].startswith("/api/demo?preset=residual-vs-plain&")


def test_handshake_era_clients_get_a_session_too(web: str) -> None:
    """mode="legacy": initialize, then messages carrying Mcp-Session-Id."""

    async def scenario() -> None:
        async with Client(f"{web}/mcp", mode="legacy") as client:
            found = await client.call_tool("search_terms", {"query": "skip connections"})
            assert found.structured_content is not None
            assert found.structured_content["hits"][0]["slug"] == "residual-connection"
            cached = await client.call_tool(
                "run_experiment", {"preset": "residual-vs-plain", "params": SMALL}
            )
            assert cached.structured_content is not None, text_of(cached)
            assert cached.structured_content["source"] in ("cache", "computed")

    run(scenario())


def test_stdio_serves_every_tool_with_its_own_workers(site: Path, web: str) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with httpx.AsyncClient(base_url=web) as api, Client(stdio_server(site)) as client:
            first = await exercise(client, api)
            again = await client.call_tool(
                "run_experiment", {"preset": "residual-vs-plain", "params": SMALL}
            )
            assert again.structured_content is not None
            return first, again.structured_content

    first, again = run(scenario())
    assert again["source"] == "cache" and again["variants"] == first["variants"]
    # Its own process and workers, the same numbers as the web demo's for the same config.
    assert the_api_run(web)["variants"] == first["variants"]


def test_demo_errors_are_tool_errors_in_the_apis_words(site: Path) -> None:
    """A server without demo workers: the API's 503 message, as the tool's error."""
    with serving(create_app(settings_for(site, demo_workers=0))) as url:
        refused = httpx.get(f"{url}/api/demo", params={"preset": "residual-vs-plain"})
        assert refused.status_code == 503

        async def scenario() -> CallToolResult:
            async with Client(f"{url}/mcp") as client:
                return await client.call_tool("run_experiment", {"preset": "residual-vs-plain"})

        result = run(scenario())
    assert result.is_error
    assert refused.json()["message"] in text_of(result)


def test_an_agent_shares_the_web_demos_per_client_cap(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP the client is the peer address, as for /api/demo: while an agent's run holds
    this peer's one slot, the web demo refuses the same peer (429), and so does the tool, in
    the same words."""
    monkeypatch.setenv("GLOSSARY_TEST_GATE_DIR", str(tmp_path))  # the workers inherit it
    held = SMALL | {"seed": HELD, "steps": 7}
    app = create_app(
        settings_for(
            site, demo_workers=1, demo_client_cap=1, demo_engine="tests.worker_engines:scripted"
        )
    )

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url) as api, Client(f"{url}/mcp") as client:
            running = asyncio.Event()

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                running.set()

            first = asyncio.create_task(
                client.call_tool(
                    "run_experiment",
                    {"preset": "residual-vs-plain", "params": held},
                    progress_callback=on_progress,
                )
            )
            await running.wait()
            refused = await api.get("/api/demo", params={"preset": "residual-vs-plain", **SMALL})
            assert refused.status_code == 429, refused.text
            second = await client.call_tool(
                "run_experiment", {"preset": "residual-vs-plain", "params": SMALL}
            )
            assert second.is_error
            assert refused.json()["message"] in text_of(second)
            gate(7).touch()
            done = await first
            assert not done.is_error, text_of(done)

    with serving(app) as url:
        run(scenario(url))


def test_other_hosts_are_refused_and_headers_apply(web: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    accept = {"accept": "application/json, text/event-stream"}
    rebound = httpx.post(f"{web}/mcp", json=body, headers=accept | {"host": "evil.example"})
    assert rebound.status_code == 421
    assert rebound.json()["error"]["message"] == "Invalid Host header"
    assert rebound.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in rebound.headers["content-security-policy"]
    assert "access-control-allow-origin" not in rebound.headers
    foreign = httpx.post(
        f"{web}/mcp", json=body, headers=accept | {"origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    garbage = httpx.post(f"{web}/mcp", content=b"{not json", headers=accept)
    assert garbage.status_code == 400 and "error" in garbage.json()


def test_allowed_hosts_come_from_the_settings() -> None:
    settings = Settings(host="0.0.0.0", mcp_allowed_hosts="glossary.example, lab.example:8443")  # noqa: S104
    hosts = transport_security(settings).allowed_hosts
    assert {"127.0.0.1:*", "localhost:*", "glossary.example", "glossary.example:*"} <= set(hosts)
    assert "lab.example:8443" in hosts and "lab.example:8443:*" not in hosts
    assert not any(h.startswith("0.0.0.0") for h in hosts)  # noqa: S104
    origins = transport_security(settings).allowed_origins
    assert "https://glossary.example" in origins


def test_mcp_is_documented_in_openapi() -> None:
    schema = create_app(Settings(database_url="sqlite:///:memory:")).openapi()
    operations = schema["paths"]["/mcp"]
    assert set(operations) == {"post", "get", "delete"}
    assert set(operations["post"]["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
