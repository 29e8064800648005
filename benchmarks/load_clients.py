"""The clients of benchmarks/load.sh, against one running server (the script starts it).

    load_clients.py measure BASE PID WORKERS LUA OUT.json [--seconds S --rounds R]
    load_clients.py report OUT.json... [--logs SERVER.log...]

`measure` drives one server with WORKERS demo workers through these phases and writes what
it saw as JSON; `report` prints the figures of every server side by side, and exits 1 when
a target is missed.

- throughput: 2 x WORKERS + 2 clients (each its own X-Forwarded-For address: the per-client
  cap never applies) ask for uncached runs back to back: computed runs per second.
- fairness: one client (one address) asks for uncached runs from six connections at once,
  pausing HAMMER_PAUSE_S after each refusal; a second visitor (another address) asks for one
  uncached run over the stream every few seconds: its wait to the first `progress` event
  (its run started) and to `result`, in run lengths (the median elapsed_ms of the hammerer's
  runs in the same window), and how many 429s the hammerer got.
- first event: while the throughput clients keep every worker busy, new visitors open the
  stream one at a time: the time to the first event (`queued`), then they leave.
- pages: wrk against a term page, idle, then while the throughput clients keep the demo
  saturated, in alternating rounds: requests, p50, p99 and status codes.
- memory: the web process's VmRSS and whether libtorch is mapped into it, at the start and
  after the load; each worker process's VmRSS.

Every run is the same small config with a fresh seed, so every request trains. Clients
are asyncio tasks: when a phase ends they are cancelled, their connections close, and the
server cancels their runs; the next phase starts when /healthz shows the workers idle.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The preset's default run (depth 32, width 64, 100 steps: about 0.5 s on one CPU thread),
# long enough that a run length is the run, not the HTTP around it; LOAD_RUN overrides it.
RUN = os.environ.get("LOAD_RUN", "preset=residual-vs-plain")
PAGE = "/terms/residual-connection"
HAMMER_THREADS = 6
HAMMER_PAUSE_S = 0.1  # the hammerer's pause after a 429 (it does not wait for Retry-After)
VISITOR_PAUSE_S = (1.0, 3.0)  # the visitor's think time between its runs (uniform)
FIRST_EVENT_PROBES = 20
WRK_CONNECTIONS = 16
_seeds = itertools.count(random.randrange(1, 2**30))


def run_query() -> str:
    return f"{RUN}&seed={next(_seeds)}"


def classify(status: int, body: bytes) -> tuple[str, dict[str, Any]]:
    """'200 computed', '429 client_cap', '503 busy' (the queue is full), '503 <reason>'..."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if status == 200:
        return f"200 {data.get('source', '?')}", data
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    if status == 503 and "demo is busy" in str(data.get("message", "")):
        return "503 busy", data
    reason = details.get("reason") if details else None
    return (f"{status} {reason}" if reason else str(status)), data


@dataclass
class Tally:
    """What a set of clients got: statuses, and each computed run's (end time, elapsed_ms)."""

    statuses: Counter[str] = field(default_factory=Counter)
    runs: list[tuple[float, float]] = field(default_factory=list)

    def add(self, status: int, body: bytes) -> None:
        kind, data = classify(status, body)
        self.statuses[kind] += 1
        if kind == "200 computed":
            self.runs.append((time.monotonic(), float(data.get("elapsed_ms", 0.0))))


async def ask_json(client: httpx.AsyncClient, address: str, tally: Tally, pause_s: float) -> None:
    """One client connection asking for uncached runs back to back, forever."""
    while True:
        try:
            response = await client.get(f"/api/demo?{run_query()}", headers=forwarded(address))
        except httpx.HTTPError as exc:
            tally.statuses[f"client error {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)
            continue
        tally.add(response.status_code, response.content)
        if response.status_code != 200:
            await asyncio.sleep(pause_s)


def forwarded(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


def new_client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60.0, connect=5.0))


class Clients:
    """Tasks asking for uncached runs; closing cancels them (and so their runs)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.tally = Tally()
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[httpx.AsyncClient] = []

    def add(self, address: str, pause_s: float = 0.5) -> None:
        client = new_client(self.base)
        self._clients.append(client)
        self._tasks.append(asyncio.ensure_future(ask_json(client, address, self.tally, pause_s)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients:
            await client.aclose()


def saturating(base: str, workers: int, tag: int) -> Clients:
    """2 x workers + 2 clients with an address each: every worker busy and a queue."""
    clients = Clients(base)
    for i in range(2 * workers + 2):
        clients.add(f"10.{tag}.0.{i + 1}")
    return clients


async def health(base: str) -> dict[str, Any]:
    async with new_client(base) as client:
        response = await client.get("/healthz")
        return dict(response.json())


async def until_idle(base: str, limit_s: float = 30.0) -> float:
    """Wait until no run is queued or running (cancelled runs stop at their next step)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        demo = (await health(base))["demo"]
        if demo["busy"] == 0 and demo["queue"] == 0 and demo["in_flight"] == 0:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - start


# ----------------------------------------------------------------------------- phases


async def throughput(base: str, workers: int, seconds: float) -> dict[str, Any]:
    clients = saturating(base, workers, tag=1)
    await asyncio.sleep(3.0)  # every worker busy, the queue filled
    start = time.monotonic()
    await asyncio.sleep(seconds)
    end = time.monotonic()
    await clients.close()
    runs = [elapsed for at, elapsed in clients.tally.runs if start <= at < end]
    return {
        "clients": 2 * workers + 2,
        "seconds": end - start,
        "runs": len(runs),
        "runs_per_s": len(runs) / (end - start),
        "elapsed_ms_median": statistics.median(runs) if runs else None,
        "statuses": dict(clients.tally.statuses),
        "idle_after_s": await until_idle(base),
    }


@dataclass
class Visit:
    """One stream, as the visitor saw it (seconds from the request)."""

    status: str = ""
    queued_s: float | None = None
    queued: dict[str, Any] | None = None
    started_s: float | None = None  # the first progress event: the run started
    result_s: float | None = None
    source: str | None = None
    elapsed_ms: float | None = None


async def visit(base: str, address: str, *, first_event_only: bool = False) -> Visit:
    """Open the stream for an uncached run (a new connection, like a new visitor)."""
    seen = Visit()
    start = time.monotonic()
    async with new_client(base) as client:
        headers = forwarded(address) | {"accept": "text/event-stream"}
        async with client.stream("GET", f"/api/demo/stream?{run_query()}", headers=headers) as r:
            if r.status_code != 200:
                seen.status = classify(r.status_code, await r.aread())[0]
                return seen
            event = ""
            async for line in r.aiter_lines():
                now = time.monotonic() - start
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                    if event == "queued" and seen.queued_s is None:
                        seen.queued_s = now
                    elif event == "progress" and seen.started_s is None:
                        seen.started_s = now
                elif line.startswith("data:"):
                    if event == "queued" and seen.queued is None:
                        seen.queued = json.loads(line.partition(":")[2])
                        if first_event_only:
                            seen.status = "200 queued"
                            return seen  # leaving: the server cancels the queued run
                    elif event in ("result", "error"):
                        data = json.loads(line.partition(":")[2])
                        seen.result_s = now
                        if event == "result":
                            seen.status = "200 " + str(data.get("source"))
                            seen.source = data.get("source")
                            seen.elapsed_ms = float(data.get("elapsed_ms", 0.0))
                        else:
                            seen.status = f"error {data.get('status')} " + str(
                                (data.get("details") or {}).get("reason")
                            )
                        return seen
    seen.status = seen.status or "stream ended without a result"
    return seen


async def fairness(base: str, seconds: float) -> dict[str, Any]:
    hammer = Clients(base)
    for _ in range(HAMMER_THREADS):
        hammer.add("10.9.9.9", pause_s=HAMMER_PAUSE_S)
    await asyncio.sleep(3.0)  # the hammerer at its cap, its runs on the workers
    start = time.monotonic()
    before = Counter(hammer.tally.statuses)
    visits: list[Visit] = []
    while time.monotonic() - start < seconds:
        visits.append(await visit(base, "10.8.8.8"))
        await asyncio.sleep(random.uniform(*VISITOR_PAUSE_S))
    end = time.monotonic()
    await hammer.close()
    runs = [elapsed for at, elapsed in hammer.tally.runs if start <= at < end]
    got = Counter(hammer.tally.statuses)
    got.subtract(before)
    return {
        "seconds": end - start,
        "hammer_threads": HAMMER_THREADS,
        "hammer_pause_s": HAMMER_PAUSE_S,
        "hammer_statuses": {k: v for k, v in got.items() if v},
        "hammer_runs": len(runs),
        "run_ms": statistics.median(runs) if runs else None,
        "visits": [vars(v) for v in visits],
        "idle_after_s": await until_idle(base),
    }


async def first_event(base: str, workers: int) -> dict[str, Any]:
    clients = saturating(base, workers, tag=2)
    await asyncio.sleep(3.0)
    probes, control = [], []
    for i in range(FIRST_EVENT_PROBES):
        probes.append(await visit(base, f"10.7.0.{i + 1}", first_event_only=True))
        await asyncio.sleep(0.1)
        start = time.monotonic()  # the same server answering a plain request, for comparison
        await health(base)
        control.append(1000 * (time.monotonic() - start))
        await asyncio.sleep(0.1)
    await clients.close()
    return {
        "probes": [vars(p) for p in probes],
        "healthz_ms": control,
        "load_statuses": dict(clients.tally.statuses),
        "idle_after_s": await until_idle(base),
    }


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_wrk(out: str) -> dict[str, Any]:
    def ms(text: str) -> float:
        match = re.fullmatch(r"([\d.]+)([a-z]+)", text)
        assert match is not None, text
        return float(match.group(1)) * UNITS[match.group(2)]

    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    statuses = (
        dict(re.findall(r"(\w+)=(\d+)", out.split("statuses", 1)[1])) if "statuses" in out else {}
    )
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    socket = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": ms(latency["50"]) if "50" in latency else None,
        "p99": ms(latency["99"]) if "99" in latency else None,
        "statuses": {k: int(v) for k, v in statuses.items()},
        "socket_errors": socket.group(1) if socket else "",
    }


_wrk: asyncio.subprocess.Process | None = None


async def wrk(base: str, lua: str, seconds: float) -> dict[str, Any]:
    global _wrk
    _wrk = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{WRK_CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        lua,
        base + PAGE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await _wrk.communicate()
    _wrk = None
    return parse_wrk(out.decode())


async def pages(base: str, workers: int, lua: str, seconds: float, rounds: int) -> dict[str, Any]:
    await wrk(base, lua, 1)  # the response cache and the connections warm
    idle, busy = [], []
    load = Tally()
    for _ in range(rounds):
        idle.append(await wrk(base, lua, seconds))
        clients = saturating(base, workers, tag=3)
        await asyncio.sleep(2.0)  # every worker busy, the queue filled
        busy.append(await wrk(base, lua, seconds))
        await clients.close()
        load.statuses.update(clients.tally.statuses)
        await until_idle(base)
    return {"idle": idle, "busy": busy, "load_statuses": dict(load.statuses)}


def memory(pid: int) -> dict[str, Any]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {"pid": pid, "rss_mb": None, "libtorch": None}
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return {
        "pid": pid,
        "rss_mb": int(rss.group(1)) / 1024 if rss else None,
        "libtorch": sum(1 for line in maps.splitlines() if "libtorch" in line),
    }


async def workers_memory(base: str) -> list[dict[str, Any]]:
    detail = (await health(base))["demo"]["detail"]
    return [memory(int(w["pid"])) for w in detail if w.get("pid")]


async def measure(args: argparse.Namespace) -> None:
    base, pid, workers, seconds = args.base, args.pid, args.workers, args.seconds
    report: dict[str, Any] = {"workers": workers, "cores": len(os.sched_getaffinity(0))}
    report["web_start"] = memory(pid)
    report["workers_start"] = await workers_memory(base)
    phases: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("throughput", lambda: throughput(base, workers, 3 * seconds)),
        ("fairness", lambda: fairness(base, 8 * seconds)),
        ("first_event", lambda: first_event(base, workers)),
        ("pages", lambda: pages(base, workers, args.lua, seconds, args.rounds)),
    ]
    for name, phase in phases:
        began = time.monotonic()
        report[name] = await phase()
        print(
            f"load_clients: {workers} worker(s): {name} done in {time.monotonic() - began:.0f} s",
            file=sys.stderr,
        )
        Path(args.out).write_text(json.dumps(report, indent=1))
    report["web_after"] = memory(pid)
    report["workers_after"] = await workers_memory(base)
    Path(args.out).write_text(json.dumps(report, indent=1))


# ----------------------------------------------------------------------------- report


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def counts(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())) or "none"


def report(paths: list[str], logs: list[str]) -> int:
    results = [json.loads(Path(p).read_text()) for p in paths]
    missed: list[str] = []

    def check(ok: bool, what: str) -> str:
        if not ok:
            missed.append(what)
        return "ok" if ok else "MISSED"

    cores = results[0]["cores"]
    print(
        f"uncached runs: {RUN}&seed=<new each>; {cores} cores, where "
        f"GLOSSARY_DEMO_WORKERS=auto starts {max(1, cores - 1)}"
    )
    print()
    print("(a) throughput, computed runs (200, source computed) per second")
    for r in results:
        t = r["throughput"]
        print(
            f"  {r['workers']} worker(s): {t['runs_per_s']:.2f} runs/s ({t['runs']} runs in "
            f"{t['seconds']:.0f} s, {t['clients']} clients; run elapsed_ms median "
            f"{ms(t['elapsed_ms_median'])}); statuses {counts(t['statuses'])}"
        )
    if len(results) > 1 and results[0]["throughput"]["runs_per_s"]:
        ratio = results[-1]["throughput"]["runs_per_s"] / results[0]["throughput"]["runs_per_s"]
        print(f"  {results[-1]['workers']} workers / {results[0]['workers']}: {ratio:.2f}x")

    print()
    print(
        f"(b) fairness: one client on {HAMMER_THREADS} connections (pause "
        f"{HAMMER_PAUSE_S:g} s after a refusal) vs a visitor asking for one run every "
        f"{VISITOR_PAUSE_S[0]:g}-{VISITOR_PAUSE_S[1]:g} s after its last"
    )
    for r in results:
        f = r["fairness"]
        run_ms = f["run_ms"]
        visits = f["visits"]
        done = [v for v in visits if v["started_s"] is not None and v["result_s"] is not None]
        bad = Counter(v["status"] for v in visits if v not in done or v["source"] != "computed")
        print(
            f"  {r['workers']} worker(s): run length (median elapsed_ms of the hammerer's "
            f"{f['hammer_runs']} runs) {ms(run_ms)}; hammerer got {counts(f['hammer_statuses'])}"
        )
        if not done or not run_ms:
            print(f"    no visit completed: {counts(dict(bad))}")
            missed.append(f"fairness ({r['workers']} workers): no visit completed")
            continue
        started = [1000 * v["started_s"] / run_ms for v in done]
        finished = [1000 * v["result_s"] / run_ms for v in done]
        own = [v["result_s"] - v["started_s"] for v in done]
        print(
            f"    visitor, {len(done)} runs: request -> run started (first progress): median "
            f"{statistics.median(started):.2f}, max {max(started):.2f} run lengths; -> result: "
            f"median {statistics.median(finished):.2f}, max {max(finished):.2f} run lengths "
            f"(its own run {ms(1000 * statistics.median(own))} at the median)"
        )
        print(
            "    per visit, queue position / started / result in run lengths: "
            + ", ".join(
                f"{v['queued']['position'] if v['queued'] else '-'}/{s:.2f}/{e:.2f}"
                for v, s, e in zip(done, started, finished, strict=True)
            )
        )
        slot_ms = 1000 * f["seconds"] * r["workers"] / (f["hammer_runs"] + len(done))
        print(
            f"    a worker's time per run in this window (seconds x workers / runs): "
            f"{ms(slot_ms)} = {slot_ms / run_ms:.2f} run lengths; visitor started at median "
            f"{1000 * statistics.median(v['started_s'] for v in done) / slot_ms:.2f}, max "
            f"{1000 * max(v['started_s'] for v in done) / slot_ms:.2f} of those"
        )
        if bad:
            print(f"    visits without a computed result: {counts(dict(bad))}")
        print(
            "    visitor's run starts within 2 run lengths: "
            + check(max(started) <= 2 and not bad, f"fairness ({r['workers']} workers)")
        )

    print()
    print("(e) first event while every worker is busy: request -> `queued`")
    for r in results:
        probes = r["first_event"]["probes"]
        got = [1000 * p["queued_s"] for p in probes if p["queued_s"] is not None]
        busy = sum(
            1 for p in probes if p["queued"] and p["queued"]["busy"] >= p["queued"]["workers"]
        )
        if not got:
            print(
                f"  {r['workers']} worker(s): no `queued` event: "
                + counts(Counter(p["status"] for p in probes))
            )
            missed.append(f"first event ({r['workers']} workers)")
            continue
        positions = [p["queued"]["position"] for p in probes if p["queued"]]
        print(
            f"  {r['workers']} worker(s): {len(got)} of {len(probes)} streams: median "
            f"{ms(statistics.median(got))}, max {ms(max(got))} (all workers busy at {busy}; "
            f"queue positions {min(positions)}-{max(positions)}; GET /healthz meanwhile: median "
            f"{ms(statistics.median(r['first_event']['healthz_ms']))}, max "
            f"{ms(max(r['first_event']['healthz_ms']))}); within 200 ms: "
            + check(max(got) <= 200 and len(got) == len(probes), f"first event ({r['workers']})")
        )

    print()
    print(
        f"(c) wrk -t1 -c{WRK_CONNECTIONS} {PAGE}, idle vs while the demo is saturated "
        "(medians over the rounds)"
    )
    for r in results:
        p = r["pages"]
        for label in ("idle", "busy"):
            rows = p[label]
            statuses: Counter[str] = Counter()
            for row in rows:
                statuses.update(row["statuses"])
            socket = "; ".join(row["socket_errors"] for row in rows if row["socket_errors"])
            print(
                f"  {r['workers']} worker(s) {label:<4}: "
                f"{statistics.median(row['rps'] for row in rows):8.1f} req/s, p50 "
                f"{ms(statistics.median(row['p50'] for row in rows)):>9}, p99 "
                f"{ms(statistics.median(row['p99'] for row in rows)):>9}, per round p99 "
                + ", ".join(ms(row["p99"]) for row in rows)
                + f"; statuses {counts(dict(statuses))}"
                + (f"; socket errors {socket}" if socket else "")
            )
        ratios = [b["p99"] / a["p99"] for a, b in zip(p["idle"], p["busy"], strict=True)]
        ratio = statistics.median(ratios)
        page_bad = sum(
            n for row in p["idle"] + p["busy"] for k, n in row["statuses"].items() if k[0] == "5"
        )
        demo_bad = {
            k: n for k, n in p["load_statuses"].items() if k.startswith("5") and k != "503 busy"
        }
        print(
            f"    p99 saturated / idle, median of rounds: {ratio:.2f}x (target <= 2): "
            + check(ratio <= 2, f"page p99 ({r['workers']} workers)")
        )
        print(f"    demo load meanwhile: {counts(p['load_statuses'])}")
        print(
            f"    5xx on the page: {page_bad}; demo 5xx other than its busy 503: "
            f"{sum(demo_bad.values())} (target 0): "
            + check(page_bad == 0 and not demo_bad, f"5xx ({r['workers']} workers)")
        )

    print()
    print("(d) memory (VmRSS); libtorch mappings in the web process must be 0")
    for r in results:
        start, after = r["web_start"], r["web_after"]
        workers = ", ".join(
            f"{ms_mb(w['rss_mb'])} (libtorch {w['libtorch']})" for w in r["workers_after"]
        )
        print(
            f"  {r['workers']} worker(s): web process {ms_mb(start['rss_mb'])} at start, "
            f"{ms_mb(after['rss_mb'])} after the load; libtorch mapped {start['libtorch']} "
            f"at start, {after['libtorch']} after: "
            + check(start["libtorch"] == 0 and after["libtorch"] == 0, f"no torch ({r['workers']})")
        )
        print(f"    worker processes after the load: {workers}")

    print()
    errors: Counter[str] = Counter()
    tracebacks = 0
    for log in logs:
        text = Path(log).read_text(errors="replace")
        tracebacks += text.count("Traceback (most recent call last)")
        errors.update(
            re.sub(r"\b(0x)?[0-9a-f]{8,}\b|Task-\d+", "#", line)[:72]
            for line in text.splitlines()
            if re.match(r"^[\w.]+(Error|Exception): ", line)
        )
    print(f"server logs: {tracebacks} tracebacks; last lines: {counts(dict(errors))}")
    if tracebacks:
        missed.append("tracebacks in the server logs")
    print("targets missed: " + ("; ".join(missed) if missed else "none"))
    return 1 if missed else 0


def ms_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("base")
    m.add_argument("pid", type=int)
    m.add_argument("workers", type=int)
    m.add_argument("lua")
    m.add_argument("out")
    m.add_argument("--seconds", type=float, default=4.0)
    m.add_argument("--rounds", type=int, default=3)
    r = sub.add_parser("report")
    r.add_argument("results", nargs="+")
    r.add_argument("--logs", nargs="*", default=[])
    args = parser.parse_args()
    if args.command == "report":
        return report(args.results, args.logs)

    async def run() -> None:
        task = asyncio.ensure_future(measure(args))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        finally:
            if _wrk is not None and _wrk.returncode is None:
                _wrk.kill()

    try:
        asyncio.run(run())
    except asyncio.CancelledError:
        print("load_clients: stopped", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
