"""What a client of a served glossary sees, checked over HTTP with the standard library only:
scripts/test-image.sh runs it against the container (and the compose set-up) it started.

    python3 scripts/image-check.py http://127.0.0.1:PORT --terms 356

Prints one line per check and exits 1 at the first one that fails."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

# A run small enough for a shared 2-core machine, of the preset every term page links first.
DEMO = "preset=residual-vs-plain&depth=6&width=16&steps=10&batch_size=16"


class CheckFailed(Exception):
    pass


def fetch(url: str, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    # main() lets only http:// bases through
    request = urllib.request.Request(url, headers={"user-agent": "image-check"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def get_json(url: str) -> tuple[int, dict[str, str], Any]:
    status, headers, body = fetch(url)
    expect(headers.get("content-type", "").startswith("application/json"), f"{url}: not JSON")
    return status, headers, json.loads(body)


def wait_healthy(base: str, deadline_s: float) -> float:
    """Waits until /healthz says ok, a demo worker alive; prints when pages were served."""
    start = time.monotonic()
    last: Any = "no answer"
    serving = False
    while time.monotonic() - start < deadline_s:
        try:
            status, _, health = get_json(f"{base}/healthz")
            last = health
            if status == 200 and not serving:
                serving = True
                print(f"ok  serving after {time.monotonic() - start:.1f} s ({health['status']})")
            if status == 200 and health["status"] == "ok":
                took = time.monotonic() - start
                print(
                    f"ok  healthy after {took:.1f} s ({health['demo']['workers']} demo worker(s))"
                )
                return took
        except (OSError, CheckFailed, ValueError) as error:
            last = repr(error)
        time.sleep(0.5)
    raise CheckFailed(f"/healthz not ok within {deadline_s:g} s: {last}")


def check_pages(base: str, terms: int | None) -> None:
    status, _, health = get_json(f"{base}/healthz")
    expect(status == 200 and health["database"] == "ok", f"/healthz: {health}")
    if terms is not None:
        expect(health["terms"] == terms, f"/healthz: {health['terms']} terms, not {terms}")
    print(f"ok  /healthz: {health['terms']} terms, {health['demo']['workers']} demo worker(s)")

    status, headers, body = fetch(f"{base}/terms/residual-connection")
    page = body.decode()
    expect(status == 200 and headers["content-type"].startswith("text/html"), "term page")
    expect("<h1" in page and "Residual" in page, "term page: no title")
    expect("/static/" in page, "term page: no stylesheet link")
    css = page.split('href="/static/', 1)[1].split('"', 1)[0]
    expect(fetch(f"{base}/static/{css}")[0] == 200, f"static file /static/{css}")
    print(f"ok  /terms/residual-connection: {len(body)} bytes of HTML, /static/{css} served")

    status, _, term = get_json(f"{base}/api/terms/residual-connection")
    expect(status == 200 and term["slug"] == "residual-connection", f"JSON term: {term}")
    expect(term["demo_preset"] == "residual-vs-plain", "JSON term: no experiment")
    status, _, glossary = get_json(f"{base}/api/glossary")
    print(f"ok  /api/terms/residual-connection and /api/glossary ({status})")

    status, _, found = get_json(f"{base}/api/search?q=atention")
    slugs = [hit["slug"] for hit in found["hits"]]
    expect(status == 200 and "attention" in slugs[:3], f"search for a typo: {slugs[:5]}")
    status, _, html = fetch(f"{base}/search?q=attention")
    expect(status == 200 and b"/terms/attention" in html, "search page")
    print(f"ok  search: 'atention' finds attention among {found['total']} hits; the page too")


def check_demo(base: str, deadline_s: float) -> float:
    """Asks for a run until its result (503 while workers start), honouring Retry-After."""
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < deadline_s:
        status, headers, result = get_json(f"{base}/api/demo?{DEMO}")
        if status == 200:
            claims = result["claims"]
            expect(bool(claims), "demo result without claims")
            expect(all(isinstance(c["holds"], bool) for c in claims), f"claims: {claims}")
            expect(result["source"] in ("computed", "joined", "cache"), "demo: no source")
            took = time.monotonic() - start
            source = result["source"]
            print(f"ok  demo residual-vs-plain: {len(claims)} claims in {took:.1f} s ({source})")
            return took
        expect(status in (429, 503), f"demo: {status} {result}")
        last = result
        time.sleep(min(5.0, float(headers.get("retry-after", "1"))))
    raise CheckFailed(f"demo: no result within {deadline_s:g} s: {last}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="http://host:port of the served glossary")
    parser.add_argument("--terms", type=int, help="how many terms /healthz must report")
    parser.add_argument("--wait", type=float, default=180, help="seconds to become healthy")
    args = parser.parse_args()
    base = args.base.rstrip("/")
    if not base.startswith("http://"):
        parser.error("the base must be an http:// URL")
    try:
        wait_healthy(base, args.wait)
        check_pages(base, args.terms)
        check_demo(base, args.wait)
    except CheckFailed as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
