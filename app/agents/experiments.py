"""run_experiment: one run through the demo's runner, as GET /api/demo makes it.

The same validation (catalog.resolve), the same DemoRunner.open (cache, single flight,
per-client cap, fair queue, budget), the same error bodies (jobs.describe_error): an error
becomes a tool error whose text is the message the API answers with.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from app import urls
from app.demo.catalog import resolve
from app.demo.jobs import describe_error
from app.demo.runner import DemoRunner, Opened

# What an agent needs from a result is numbers and claims: the charts (every point of every
# curve) stay behind the API link in the answer.
LEFT_OUT = ("charts",)


def raw_params(params: dict[str, Any]) -> dict[str, str]:
    """Parameters as the query string would carry them (the demo validates strings)."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in params.items()
    }


def for_agents(result: dict[str, Any], source: str) -> dict[str, Any]:
    kept = {k: v for k, v in result.items() if k not in LEFT_OUT}
    config = {k: v for k, v in result.get("config", {}).items() if k != "preset"}
    query: dict[str, str | int | None] = {"preset": result["experiment"], **raw_params(config)}
    full = urls.with_query(urls.demo_result(), query)
    return kept | {"source": source, "cached": source == "cache", "full_result": full}


async def run_through(
    runner: DemoRunner, preset: str, params: dict[str, Any], client: str, ctx: Context
) -> dict[str, Any]:
    """The run's result for `client`, with progress notifications while it trains."""
    try:
        experiment, validated = resolve(preset, raw_params(params))
        opened = await runner.open(experiment, validated, client=client, progress=True)
        return await _outcome(opened, ctx)
    except ToolError:
        raise
    except Exception as exc:
        body = describe_error(exc)
        if body is None:
            raise
        raise ToolError(body["message"]) from None


async def _outcome(opened: Opened, ctx: Context) -> dict[str, Any]:
    if opened.result is not None:
        return for_agents(opened.result.model_dump(mode="json"), "cache")
    run = opened.run
    assert run is not None
    # Leaving early (the client cancelled) closes the reader: the runner stops a run that
    # nobody else follows, as when a browser leaves the web demo.
    async with aclosing(run.follow(opened.skip)) as events:
        async for event in events:
            if event.event == "progress":
                data = event.data
                await ctx.report_progress(data["step"], data["total_steps"], data["phase"])
            elif event.event == "result":
                return for_agents(event.data, run.source_for(opened.source))
            elif event.event == "error":
                raise ToolError(str(event.data.get("message", "The run failed.")))
    raise ToolError("The run ended without a result.")
