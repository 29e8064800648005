"""Search latency on synthetic glossaries (10,000 and 100,000 entries by default).

    .venv/bin/python benchmarks/search.py                      # both sizes, in-process + HTTP
    .venv/bin/python benchmarks/search.py --sizes 10000 --no-http
    .venv/bin/python benchmarks/search.py --sizes 10000 --database-url postgresql+psycopg://...

Entries get realistic lengths (CONTENT.md's bounds: a 1-4 word title, 0-4 synonyms, a 8-40
word summary, 170-430 words of text) drawn from the real corpus's words, their frequencies,
and generated words for the long tail. The index is built by app.search.build_index, the
same code the content loader runs. Each query class samples entries and derives a query
from one: exact (its title or a synonym), prefix (the first letters of a title word),
multi-word (two or three title words, lower-cased), typo (a title word with one edit, or
two for 8+ letters). Printed per class: p50/p95/p99 latency in ms, and how often the entry
the query came from ranks first (hit@1) or in the first page (hit@20).

In-process timings call app.glossary.build_search (ranking, highlighting, the view model).
HTTP timings run a real uvicorn on 127.0.0.1 and GET /api/search with keep-alive, the
response cache off.

SQLite by default (a file per size); with --database-url, the PostgreSQL database named
(its search tables are replaced for each size; nothing else in it is touched), searched
through the app's read-only engine as the web process does.
"""

import argparse
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import httpx
from rapidfuzz.distance import OSA
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import db, search  # noqa: E402
from app.glossary import build_search  # noqa: E402
from app.text import fold  # noqa: E402

CLASSES = ("exact", "prefix", "multi-word", "typo")
TARGET_P95_MS = {10_000: 5.0, 100_000: 25.0}
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
ONSETS = [
    "b",
    "br",
    "c",
    "cr",
    "d",
    "dr",
    "f",
    "fl",
    "g",
    "gr",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "qu",
    "r",
    "s",
    "sh",
    "sp",
    "st",
    "t",
    "tr",
    "v",
    "w",
    "z",
    "ch",
    "th",
]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
CODAS = ["", "", "", "n", "r", "s", "l", "x", "t", "m", "nd", "st", "ck", "ng"]
SUFFIXES = ["", "", "", "ation", "ing", "er", "ive", "al", "ism", "ity", "net", "former", "ization"]


@dataclass
class Vocabulary:
    body_words: list[str]
    body_cum: list[float]  # cumulative weights: random.choices is O(log n) per draw with them
    title_words: list[str]
    title_cum: list[float]


def corpus_words() -> tuple[Counter[str], Counter[str]]:
    """Word frequencies of the real corpus: (all text, titles and synonyms)."""
    text: Counter[str] = Counter()
    names: Counter[str] = Counter()
    for path in sorted((ROOT / "data" / "terms").glob("*.toml")):
        entry = tomllib.loads(path.read_text())
        for key in ("summary", "definition", "background", "usage_note"):
            text.update(w.lower() for w in WORD.findall(re.sub(r"\[\[|\]\]", " ", entry[key])))
        for name in [entry["title"], *entry.get("synonyms", [])]:
            names.update(w.lower() for w in WORD.findall(name) if len(w) > 2)
    return text, names


def pseudo_word(rng: random.Random) -> str:
    syllables = rng.choice([1, 2, 2, 3, 3, 4])
    word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(syllables))
    return word + rng.choice(CODAS) + rng.choice(SUFFIXES)


def vocabulary(size: int, rng: random.Random) -> Vocabulary:
    """Body words: the real corpus's words with their counts plus a Zipf tail of generated
    words. Title words: the real names' words plus size // 4 generated words (unique titles)."""
    text, names = corpus_words()
    generated = list(dict.fromkeys(pseudo_word(rng) for _ in range(size // 2 + 5000)))
    real = [w for w, _ in text.most_common()]
    body_words = real + generated
    top = text.most_common(1)[0][1]
    body_weights = [float(text[w]) for w in real]
    body_weights += [top / (50 + rank) ** 1.1 for rank in range(len(generated))]
    title_pool = list(dict.fromkeys([*names, *generated[: size // 4 + 500]]))
    title_weights = [1.0 / (1 + rank) ** 0.6 for rank in range(len(title_pool))]
    return Vocabulary(
        body_words, list(accumulate(body_weights)), title_pool, list(accumulate(title_weights))
    )


def sentence(words: list[str]) -> str:
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


def generate(size: int, seed: int) -> list[search.Document]:
    """`size` synthetic entries with unique titles."""
    rng = random.Random(seed)
    vocab = vocabulary(size, rng)
    titles: set[str] = set()
    documents = []
    categories = [f"category-{i}" for i in range(12)]
    while len(documents) < size:
        count = rng.choices([1, 2, 3, 4], weights=[25, 40, 25, 10])[0]
        words = rng.choices(vocab.title_words, cum_weights=vocab.title_cum, k=count)
        title = " ".join(w.capitalize() for w in words)
        if search.compact(title) in titles or len(set(words)) < count:
            continue
        titles.add(search.compact(title))
        synonyms: list[str] = []
        for _ in range(rng.choices([0, 1, 2, 3, 4], weights=[15, 35, 30, 15, 5])[0]):
            kind = rng.random()
            if kind < 0.3 and count >= 2:
                synonyms.append("".join(w[0] for w in words).upper())
            elif kind < 0.6:
                swap = rng.choices(vocab.title_words, cum_weights=vocab.title_cum)[0]
                synonyms.append(" ".join([*words[:-1], swap]).capitalize())
            elif kind < 0.8:
                synonyms.append(title + " " + rng.choice(["model", "method", "network", "layer"]))
            else:
                synonyms.append(pseudo_word(rng).capitalize())
        synonyms = list(dict.fromkeys(s for s in synonyms if search.compact(s) not in titles))

        def text(n: int, own: list[str] = words) -> str:
            body = rng.choices(vocab.body_words, cum_weights=vocab.body_cum, k=n)
            for _ in range(max(1, n // 40)):  # the entry talks about itself
                body.insert(rng.randrange(len(body) + 1), rng.choice(own))
            return " ".join(sentence(body[i : i + 18]) for i in range(0, len(body), 18))

        documents.append(
            search.Document(
                slug=search.compact(title) + f"-{len(documents)}",
                title=title,
                synonyms=synonyms,
                summary=text(rng.randint(8, 40)),
                body="\n\n".join(
                    text(rng.randint(lo, hi)) for lo, hi in ((60, 150), (80, 200), (30, 80))
                ),
                category=rng.choice(categories),
            )
        )
    return documents


def typo(word: str, rng: random.Random) -> str:
    """One random edit (insert, delete, substitute, transpose), or two for words that keep 8
    letters or more: the budget the issue sets (by the length of the word as typed)."""
    while True:
        edits = 2 if len(word) >= 9 and rng.random() < 0.5 else 1
        typed = word
        for _ in range(edits):
            i = rng.randrange(len(typed) - 1)
            op = rng.choice(["insert", "delete", "substitute", "transpose"])
            letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
            if op == "insert":
                typed = typed[:i] + letter + typed[i:]
            elif op == "delete":
                typed = typed[:i] + typed[i + 1 :]
            elif op == "substitute":
                typed = typed[:i] + letter + typed[i + 1 :]
            else:
                typed = typed[:i] + typed[i + 1] + typed[i] + typed[i + 2 :]
        # rapidfuzz's distance, not the engine's: the class is what a person mistypes
        distance = OSA.distance(typed, word)
        if 0 < distance <= search.typo_budget(typed):
            return typed


def queries(
    documents: list[search.Document], count: int, seed: int
) -> dict[str, list[tuple[str, str]]]:
    """(query, slug it came from) per class."""
    rng = random.Random(seed + 1)
    out: dict[str, list[tuple[str, str]]] = {c: [] for c in CLASSES}
    while min(len(v) for v in out.values()) < count:
        doc = rng.choice(documents)
        words = fold(doc.title).split()
        long_words = [w for w in words if len(w) >= 5]
        if len(out["exact"]) < count:
            out["exact"].append((rng.choice([doc.title, doc.title, *doc.synonyms]), doc.slug))
        if len(out["prefix"]) < count and long_words:
            word = rng.choice(long_words)
            out["prefix"].append((word[: rng.randint(3, min(6, len(word) - 1))].lower(), doc.slug))
        if len(out["multi-word"]) < count and len(words) >= 2:
            picked = rng.sample(words, min(len(words), rng.choice([2, 3])))
            out["multi-word"].append((" ".join(picked).lower(), doc.slug))
        if len(out["typo"]) < count and long_words:
            target = rng.choice(long_words)
            query = " ".join(typo(w, rng) if w == target else w for w in words)
            out["typo"].append((query, doc.slug))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(
    run: Callable[[str], list[str]], cases: list[tuple[str, str]]
) -> tuple[list[float], float, float]:
    """Latencies in ms, hit@1 and hit@20."""
    timings, first, page = [], 0, 0
    for query, slug in cases:
        start = time.perf_counter()
        slugs = run(query)
        timings.append((time.perf_counter() - start) * 1000)
        first += bool(slugs) and slugs[0] == slug
        page += slug in slugs
    return timings, first / len(cases), page / len(cases)


def report(
    label: str, cls: str, timings: list[float], hit1: float, hit20: float, target: float | None
) -> bool:
    p95 = percentile(timings, 95)
    ok = target is None or p95 <= target
    verdict = "" if target is None else ("  ok" if ok else f"  OVER {target:g} ms")
    print(
        f"{label:<24}{cls:<12}{len(timings):>6}{statistics.median(timings):>9.2f}"
        f"{p95:>9.2f}{percentile(timings, 99):>9.2f}{hit1:>8.0%}{hit20:>8.0%}{verdict}",
        flush=True,
    )
    return ok


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(database_url: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "GLOSSARY_DATABASE_URL": database_url,
        "GLOSSARY_DATA_DIR": str(folder),
        "GLOSSARY_BUILD_ON_START": "false",
        "GLOSSARY_RESPONSE_CACHE": "false",
        "GLOSSARY_DEMO_WARMUP": "false",
        "GLOSSARY_DEMO_DEVICE": "cpu",
    }
    log = (folder / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited; see {folder / 'uvicorn.log'}")
        try:
            if httpx.get(f"{base}/api/search?q=warm", timeout=5).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("uvicorn did not answer within 60 s")


def index_megabytes(url: str, folder: Path, size: int) -> float:
    """The index's size on disk: the SQLite files, or PostgreSQL's search tables with their
    indexes and toast."""
    if db.is_sqlite(url):
        return sum(p.stat().st_size for p in folder.glob(f"search-{size}.db*")) / 1e6
    engine = db.make_engine(url)
    with engine.connect() as conn:
        total = conn.exec_driver_sql(
            "SELECT sum(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relkind = 'r' AND relname LIKE 'search%%' AND relnamespace = "
            "'public'::regnamespace"
        ).scalar()
    engine.dispose()
    return float(total or 0) / 1e6


def backend_version(url: str) -> str:
    if db.is_sqlite(url):
        return f"SQLite {sqlite3.sqlite_version}"
    engine = db.make_engine(url)
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SHOW server_version").scalar()
    engine.dispose()
    return f"PostgreSQL {version}"


def run_size(size: int, args: argparse.Namespace, folder: Path) -> bool:
    started = time.perf_counter()
    documents = generate(size, args.seed)
    generated = time.perf_counter() - started
    path = folder / f"search-{size}.db"
    url = args.database_url or f"sqlite:///{path}"
    built = 0.0
    if not (args.reuse and path.exists() and not args.database_url):
        writer = db.make_engine(url)
        started = time.perf_counter()
        with writer.begin() as conn:
            search.drop_index(conn)
            search.build_index(conn, documents)
        search.after_load(writer)
        built = time.perf_counter() - started
        writer.dispose()
    megabytes = index_megabytes(url, folder, size)
    how = f"index built in {built:.1f} s" if built else "index reused"
    print(
        f"\n{size:,} entries: generated in {generated:.1f} s, {how}, {megabytes:.0f} MB", flush=True
    )
    print(
        f"{'':<24}{'class':<12}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'hit@1':>8}{'hit@20':>8}"
    )
    cases = queries(documents, args.queries, args.seed)
    ok = True
    engine = db.make_engine(url, read_only=True)
    with Session(engine) as session:

        def in_process(query: str) -> list[str]:
            return [hit.slug for hit in build_search(session, query).hits]

        for query, _ in cases["exact"][:50] + cases["typo"][:50]:  # warm the page cache
            in_process(query)
        for cls in CLASSES:
            timings, hit1, hit20 = measure(in_process, cases[cls])
            ok &= report("in-process", cls, timings, hit1, hit20, TARGET_P95_MS.get(size))
    engine.dispose()
    if args.http:
        process, base = serve(url, folder)
        try:
            with httpx.Client(base_url=base, timeout=30) as client:

                def over_http(query: str) -> list[str]:
                    response = client.get("/api/search", params={"q": query})
                    response.raise_for_status()
                    return [hit["slug"] for hit in response.json()["hits"]]

                for query, _ in cases["exact"][:50]:
                    over_http(query)
                for cls in CLASSES:
                    timings, hit1, hit20 = measure(over_http, cases[cls])
                    report("HTTP /api/search", cls, timings, hit1, hit20, None)

                def suggest(query: str) -> list[str]:
                    response = client.get("/api/suggest", params={"q": query})
                    response.raise_for_status()
                    return [url.rsplit("/", 1)[-1] for url in response.json()[3]]

                timings, hit1, hit20 = measure(suggest, cases["prefix"])
                report("HTTP /api/suggest", "prefix", timings, hit1, hit20, None)
        finally:
            process.terminate()
            process.wait(10)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300, help="queries per class")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-http", dest="http", action="store_false")
    parser.add_argument("--keep", type=Path, help="build the databases here and keep them")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database to benchmark instead of SQLite files (its search tables "
        "are replaced)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: use databases already there (same seed, same code)",
    )
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="glossary-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"{backend_version(args.database_url or 'sqlite://')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; p95 targets (in-process): "
        + ", ".join(f"{s:,}: {t:g} ms" for s, t in TARGET_P95_MS.items())
    )
    try:
        ok = True
        for size in args.sizes:
            ok &= run_size(size, args, folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print("\nall p95 targets met" if ok else "\nSOME p95 TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
