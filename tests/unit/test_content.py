"""Content validation and loading: every error kind, all reported at once, and a failed
load leaves the database exactly as it was."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

from app.cli import app as cli
from app.content import ContentError, read_corpus
from app.db import connection_pragmas, make_engine, verify_pragmas
from tests.conftest import ROOT, fresh_database_url
from tests.factories import default_terms, term, to_toml, words, write_corpus

runner = CliRunner()


def problems_for(data_dir: Path) -> list[str]:
    with pytest.raises(ContentError) as info:
        read_corpus(data_dir)
    return [str(p) for p in info.value.problems]


def edit(data_dir: Path, slug: str, **changes: object) -> None:
    entry = default_terms()[slug]
    entry.update(changes)
    (data_dir / "terms" / f"{slug}.toml").write_text(to_toml(entry))


def test_valid_corpus_reads(data_dir: Path) -> None:
    corpus = read_corpus(data_dir)
    assert sorted(corpus.terms) == [
        "layer-normalization",
        "residual-connection",
        "resnet",
        "vanishing-gradient",
    ]
    assert corpus.terms["residual-connection"].synonyms == ["Skip connection", "Residual block"]


@pytest.mark.parametrize(
    ("slug", "changes", "expected"),
    [
        (
            "resnet",
            {"related": ["residual-connection", "nope", "vanishing-gradient"]},
            "terms/resnet.toml: related[1]: unknown term 'nope'",
        ),
        ("resnet", {"category": "cooking"}, "terms/resnet.toml: category: unknown category"),
        (
            "residual-connection",
            {"organizations": [{"key": "acme", "note": "Did something specific here."}]},
            "organizations[0].key: unknown organization 'acme'",
        ),
        (
            "resnet",
            {"synonyms": ["Skip connection"]},
            "terms/resnet.toml: synonyms[0]: duplicate synonym 'Skip connection'",
        ),
        (
            "resnet",
            {"synonyms": ["layer normalization"]},
            "synonyms[0]: duplicate synonym 'layer normalization': title of",
        ),
        ("resnet", {"title": "Residual Connection"}, "terms/resnet.toml: title: duplicates"),
        (
            "resnet",
            {"definition": "Has <b>bold</b> " + words(70)},
            "terms/resnet.toml: definition: raw HTML is not allowed: '<b>'",
        ),
        (
            "resnet",
            {"background": "<script>alert(1)</script>\n\n" + words(90)},
            "terms/resnet.toml: background: raw HTML is not allowed",
        ),
        (
            "resnet",
            {"usage_note": "See [[missing-term]]. " + words(35)},
            "terms/resnet.toml: usage_note: links to unknown term [[missing-term]]",
        ),
        (
            "resnet",
            {"summary": words(41)},
            "terms/resnet.toml: summary: has 41 words; allowed 3-40",
        ),
        ("resnet", {"definition": words(20)}, "definition: has 20 words; allowed 60-150"),
        ("resnet", {"related": ["residual-connection"]}, "related: has 1 terms; allowed 3-8"),
        ("resnet", {"demo": "made-up"}, "terms/resnet.toml: demo: unknown experiment 'made-up'"),
        (
            "resnet",
            {"demo": "dropout"},
            "terms/resnet.toml: demo: experiment 'dropout' does not list 'resnet' in its terms",
        ),
        (
            "resnet",
            {"read_more": [{"title": "Plain", "url": "http://example.com/x"}]},
            "read_more.0.url: Value error, must be an https:// URL",
        ),
        ("resnet", {"formula": "\\frac{1}{"}, "terms/resnet.toml: formula: cannot be rendered"),
        (
            "resnet",
            {"formula": "x + \\text{<script>alert(1)</script>}"},
            "formula: cannot be rendered as math: <script> is not MathML",
        ),
        (
            "resnet",
            {
                "illustration": {
                    "file": "absent.svg",
                    "alt": "A picture of nothing at all.",
                    "caption": "Nothing.",
                }
            },
            "illustration.file: no such file illustrations/absent.svg",
        ),
        ("resnet", {"colour": "blue"}, "terms/resnet.toml: colour: unknown field"),
        (
            "resnet",
            {"introduced_in": {"title": "Deep Residual Learning", "authors": "He", "year": 2015}},
            "terms/resnet.toml: introduced_in: Value error, needs an arxiv id, a doi or a url",
        ),
        (
            "resnet",
            {
                "introduced_in": {
                    "title": "Deep Residual Learning",
                    "authors": "He, Zhang, Ren, Sun",
                    "year": 2016,
                    "arxiv": "1512.03385",
                }
            },
            "introduced_in: Value error, year 2016 is after its arXiv posting (2015)",
        ),
        (
            "resnet",
            {"introduced_in": {"title": "T", "authors": "He", "year": 2015, "arxiv": "1512-033"}},
            "terms/resnet.toml: introduced_in.arxiv: String should match pattern",
        ),
        (
            "resnet",
            {"introduced_in": {"title": "T", "authors": "He", "year": 2015, "doi": "doi.org/x"}},
            "terms/resnet.toml: introduced_in.doi: String should match pattern",
        ),
    ],
)
def test_each_problem_names_file_field_and_reason(
    data_dir: Path, slug: str, changes: dict[str, object], expected: str
) -> None:
    edit(data_dir, slug, **changes)
    problems = problems_for(data_dir)
    assert any(expected in p for p in problems), problems


def test_missing_field(data_dir: Path) -> None:
    entry = default_terms()["resnet"]
    del entry["summary"]
    (data_dir / "terms" / "resnet.toml").write_text(to_toml(entry))
    assert "data/terms/resnet.toml: summary: missing required field" in problems_for(data_dir)


def test_bad_toml(data_dir: Path) -> None:
    (data_dir / "terms" / "resnet.toml").write_text('title = "ResNet\n')
    problems = problems_for(data_dir)
    assert any(p.startswith("data/terms/resnet.toml: (file): invalid TOML") for p in problems)


def test_synonym_url_clashing_with_a_term_slug(data_dir: Path) -> None:
    edit(data_dir, "resnet", title="Residual Network")
    edit(data_dir, "layer-normalization", synonyms=["ResNet"])
    assert (
        "data/terms/layer-normalization.toml: synonyms[0]: URL /terms/resnet is already "
        "data/terms/resnet.toml"
    ) in problems_for(data_dir)


def test_one_way_relation_needs_a_reason(data_dir: Path) -> None:
    terms = default_terms()
    terms["resnet"]["related"] = ["residual-connection", "vanishing-gradient"]
    terms["resnet"]["related"].append("layer-normalization")
    terms["layer-normalization"]["related"] = [
        "residual-connection",
        "vanishing-gradient",
        "resnet",
    ]
    terms["vanishing-gradient"]["related"] = [
        "residual-connection",
        "layer-normalization",
        "resnet",
    ]
    terms["residual-connection"]["related"] = [
        "vanishing-gradient",
        "layer-normalization",
        "resnet",
    ]
    write_corpus(data_dir, terms)
    read_corpus(data_dir)  # all mutual: fine
    terms["resnet"]["related"] = ["residual-connection", "vanishing-gradient"]
    write_corpus(data_dir, terms)
    problems = problems_for(data_dir)
    assert any(
        "terms/layer-normalization.toml: related[2]: 'resnet' does not link back" in p
        for p in problems
    ), problems
    terms["layer-normalization"]["one_way_related"] = {"resnet": "ResNet predates LN."}
    terms["resnet"]["related"].append("layer-normalization")
    write_corpus(data_dir, terms)
    read_corpus(data_dir)


def test_unsafe_svg_is_refused(data_dir: Path) -> None:
    (data_dir / "illustrations" / "bad.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
        '<rect onload="x()"/></svg>'
    )
    edit(
        data_dir,
        "resnet",
        illustration={"file": "bad.svg", "alt": "A bad picture here.", "caption": "Bad."},
    )
    problems = problems_for(data_dir)
    assert any("<script> is not allowed" in p for p in problems)
    assert any("event attribute onload is not allowed" in p for p in problems)


def test_all_problems_are_reported_at_once(data_dir: Path) -> None:
    edit(data_dir, "resnet", category="cooking", summary=words(50))
    edit(data_dir, "vanishing-gradient", demo="nope")
    (data_dir / "terms" / "bad-toml.toml").write_text("= nope")
    problems = problems_for(data_dir)
    assert len(problems) >= 4
    assert {p.split(":")[0] for p in problems} >= {
        "data/terms/resnet.toml",
        "data/terms/vanishing-gradient.toml",
        "data/terms/bad-toml.toml",
    }


def _table_counts(url: str) -> dict[str, int]:
    """Rows per content table, through SQLAlchemy so it works on either backend."""
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in SQLModel.metadata.sorted_tables
        }
    engine.dispose()
    return counts


def _meta(url: str, key: str) -> str | None:
    engine = make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": key}).scalar()
    engine.dispose()
    return value


def test_cli_load_check_and_atomic_failure(tmp_path: Path, data_dir: Path) -> None:
    url = fresh_database_url(tmp_path)
    result = runner.invoke(cli, ["load", "--data-dir", str(data_dir), "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "loaded 4 terms" in result.output
    before = _table_counts(url)
    assert before["term"] == 4 and before["synonym"] == 4
    fingerprint = _meta(url, "fingerprint")
    assert fingerprint

    edit(data_dir, "resnet", related=["nope", "residual-connection", "vanishing-gradient"])
    (data_dir / "terms" / "new-term.toml").write_text(to_toml(term("New Term", ["resnet"])))
    result = runner.invoke(cli, ["load", "--data-dir", str(data_dir), "--database-url", url])
    assert result.exit_code == 1
    assert "terms/resnet.toml: related[0]: unknown term 'nope'" in result.output
    assert "terms/new-term.toml: related: has 1 terms; allowed 3-8" in result.output
    assert _table_counts(url) == before
    assert _meta(url, "fingerprint") == fingerprint

    check = runner.invoke(cli, ["check", "--data-dir", str(data_dir)])
    assert check.exit_code == 1 and "unknown term 'nope'" in check.output


def test_reload_replaces_content(tmp_path: Path, data_dir: Path) -> None:
    url = fresh_database_url(tmp_path)
    assert (
        runner.invoke(cli, ["load", "--data-dir", str(data_dir), "--database-url", url]).exit_code
        == 0
    )
    terms = default_terms()
    terms["resnet"]["title"] = "Residual Network"
    write_corpus(data_dir, terms)
    assert (
        runner.invoke(cli, ["load", "--data-dir", str(data_dir), "--database-url", url]).exit_code
        == 0
    )
    engine = make_engine(url)
    with engine.connect() as conn:
        titles = set(conn.execute(text("SELECT title FROM term")).scalars())
    engine.dispose()
    assert "Residual Network" in titles and "ResNet" not in titles and len(titles) == 4


def test_check_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real corpus (the experiments name its terms, so it passes) from a folder where
    the default database would be written: nothing appears, nothing changes."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("*.db*"))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["check", "--data-dir", "data"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {len(list((data / 'terms').glob('*.toml')))} terms")
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


@pytest.mark.sqlite_only
def test_pragmas_take_effect(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}", read_only=True)
    verify_pragmas(engine)
    pragmas = connection_pragmas(engine)
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["busy_timeout"] >= 5000
    assert pragmas["foreign_keys"] == 1
    assert pragmas["query_only"] == 1
    engine.dispose()


def test_real_corpus_passes_check() -> None:
    result = runner.invoke(cli, ["check", "--data-dir", "data"])
    assert result.exit_code == 0, result.output


def test_check_rejects_an_experiment_naming_a_term_the_glossary_lacks(data_dir: Path) -> None:
    """The small corpus lacks most terms the experiments illustrate: `glossary check` names
    each experiment and term (the real content has them all, see test_corpus)."""
    check = runner.invoke(cli, ["check", "--data-dir", str(data_dir)])
    assert check.exit_code == 1, check.output
    assert (
        "app/demo/families/generalization.py: dropout.terms: unknown term 'dropout'" in check.output
    )
    assert "problem(s) found" in check.output


def test_check_rejects_text_two_entries_share(tmp_path: Path) -> None:
    """A shared sentence or 8-word run is reported once per pair of sections; a quoted title
    and a parenthesized citation are not prose and may repeat."""
    from app.content.overlap import overlap_problems

    def distinct(n: int, tag: str) -> str:  # filler no other section shares
        return " ".join(f"{tag}{i}" for i in range(n))

    entries = default_terms()
    for slug, entry in entries.items():
        for section, n in (("summary", 8), ("definition", 70), ("background", 90)):
            entry[section] = distinct(n, f"{slug.replace('-', '')}{section[:3]}")
        entry["usage_note"] = distinct(35, f"{slug.replace('-', '')}use")
    title = '"Deep Residual Learning for Image Recognition and Other Things Too"'
    cited = "(Kaiming He, Xiangyu Zhang, Shaoqing Ren and Jian Sun, 2015)"
    entries["resnet"]["background"] += f" As {title} {cited} showed."
    entries["layer-normalization"]["background"] += f" {title} {cited}."
    data_dir = write_corpus(tmp_path / "data", entries)
    assert overlap_problems(read_corpus(data_dir)) == []

    copied = "the quick network learns a correction to what it already receives"
    entries["resnet"]["usage_note"] += f" In short, {copied} here."
    entries["vanishing-gradient"]["summary"] += f" Also {copied}, they say."
    write_corpus(data_dir, entries)
    problems = [str(p) for p in overlap_problems(read_corpus(data_dir))]
    assert problems == [
        "terms/vanishing-gradient.toml: summary: shares 'the quick network learns a correction "
        "to what' with terms/resnet.toml (usage_note); write it afresh"
    ], problems
    check = runner.invoke(cli, ["check", "--data-dir", str(data_dir)])
    assert check.exit_code == 1 and "write it afresh" in check.output
