"""The JSON API over the real glossary: shapes, filters, redirects, errors, caching."""

import time
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import PATIENCE_S
from tests.demo_fixtures import ControlledEngine, runner_in, thread_runner


def test_terms_paging_and_total(client: TestClient) -> None:
    first = client.get("/api/terms?limit=5")
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["items"]) == 5 and body["total"] >= 12
    second = client.get("/api/terms?limit=5&offset=5").json()
    assert {t["slug"] for t in body["items"]}.isdisjoint({t["slug"] for t in second["items"]})
    titles = [t["title"].lower() for t in client.get("/api/terms?limit=500").json()["items"]]
    assert titles == sorted(titles)


def test_terms_filters(client: TestClient) -> None:
    arch = client.get("/api/terms?category=model-architecture&limit=500").json()
    assert arch["total"] == len(arch["items"]) > 0
    assert all(t["category"] == "model-architecture" for t in arch["items"])
    letter_r = client.get("/api/terms?letter=r&limit=500").json()
    assert letter_r["letter"] == "R"
    assert "residual-connection" in {t["slug"] for t in letter_r["items"]}
    assert all(t["title"].upper().startswith("R") for t in letter_r["items"])


def test_term_detail(client: TestClient) -> None:
    response = client.get("/api/terms/residual-connection")
    assert response.status_code == 200, response.text
    term = response.json()
    assert term["title"] == "Residual Connection"
    assert term["category"]["slug"] == "model-architecture"
    assert {"Skip connection", "Shortcut connection"} <= set(term["synonyms"])
    # "Residual block" is the branch with its shortcut: a near-relative, not an alias
    assert "Residual block" not in term["synonyms"]
    orgs = {o["slug"] for o in term["organizations"]}
    assert {"microsoft-research", "google-research", "openai", "anthropic"} <= orgs
    assert any("Residual_neural_network" in link["url"] for link in term["read_more"])
    assert term["json_ld"]["@type"] == "DefinedTerm"
    assert term["json_ld"]["alternateName"] == term["synonyms"]
    assert 3 <= len(term["related"]) <= 8
    assert term["demo_preset"] == "residual-vs-plain"
    assert term["introduced_in"] == {
        "title": "Deep Residual Learning for Image Recognition",
        "authors": "He, Zhang, Ren, Sun",
        "year": 2015,
        "url": "https://arxiv.org/abs/1512.03385",
        "identifier": "arXiv:1512.03385",
    }
    assert term["json_ld"]["citation"] == {
        "@type": "ScholarlyArticle",
        "name": "Deep Residual Learning for Image Recognition",
        "author": "He, Zhang, Ren, Sun",
        "datePublished": "2015",
        "url": "https://arxiv.org/abs/1512.03385",
        "identifier": "arXiv:1512.03385",
    }


def test_synonym_slug_redirects_permanently(client: TestClient) -> None:
    response = client.get("/api/terms/skip-connection")
    assert response.status_code == 301
    assert response.headers["location"] == "/api/terms/residual-connection"
    page = client.get("/terms/Skip-Connection")
    assert page.status_code == 301 and page.headers["location"] == "/terms/residual-connection"


def test_categories_and_organizations(client: TestClient) -> None:
    categories = client.get("/api/categories").json()["categories"]
    assert sum(c["term_count"] for c in categories) == client.get("/api/terms").json()["total"]
    one = client.get("/api/categories/model-architecture").json()
    assert len(one["terms"]) == one["term_count"]
    orgs = client.get("/api/organizations").json()["organizations"]
    assert any(o["slug"] == "microsoft-research" for o in orgs)
    msr = client.get("/api/organizations/microsoft-research").json()
    assert any(t["term"]["slug"] == "residual-connection" for t in msr["terms"])
    assert all(t["note"] for t in msr["terms"])


def test_glossary_json_ld(client: TestClient) -> None:
    body = client.get("/api/glossary").json()
    assert body["@context"] == "https://schema.org" and body["@type"] == "DefinedTermSet"
    total = client.get("/api/terms").json()["total"]
    assert len(body["hasDefinedTerm"]) == total
    assert all(
        t["@type"] == "DefinedTerm" and t["url"].startswith("http") for t in body["hasDefinedTerm"]
    )


def test_search_basic(client: TestClient) -> None:
    body = client.get("/api/search?q=skip connection").json()
    assert body["hits"][0]["slug"] == "residual-connection", body
    assert body["hits"][0]["matched_synonym"] == "Skip connection"


def test_one_error_shape(client: TestClient) -> None:
    cases = {
        "/api/terms/no-such-term": 404,
        "/api/organizations/nobody": 404,
        "/api/categories/nothing": 404,
        "/api/terms?limit=0": 422,
        "/api/terms?limit=abc": 422,
        "/api/terms?letter=ab": 422,
        "/api/nowhere": 404,
    }
    for url, status in cases.items():
        response = client.get(url)
        assert response.status_code == status, (url, response.text)
        body = response.json()
        assert set(body) == {"status", "message", "details"}, body
        assert body["status"] == status and body["message"]
    assert "limit" in client.get("/api/terms?limit=abc").json()["message"]


def test_openapi_documents_every_route_with_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"].get("200", {})
            assert ok.get("content"), f"{method} {path} has no 200 response model"
            if path.startswith("/api/"):
                assert "422" in operation["responses"] or not operation.get("parameters"), path
    assert "ErrorBody" in spec["components"]["schemas"]


def test_docs_page_uses_vendored_swagger(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()


def test_etag_and_304(client: TestClient) -> None:
    first = client.get("/api/terms/resnet")
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public")
    again = client.get("/api/terms/resnet", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    page = client.get("/terms/resnet")
    assert (
        client.get("/terms/resnet", headers={"If-None-Match": page.headers["etag"]}).status_code
        == 304
    )
    assert client.get("/terms/resnet", headers={"If-None-Match": '"other"'}).status_code == 200


def healthz(client: TestClient) -> dict[str, Any]:
    response = client.get("/healthz")
    # pages never depend on the demo: 200 whatever its workers do
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["database"] == "ok" and body["terms"] > 0, body
    return body


def test_healthz(client: TestClient) -> None:
    """The real server (one demo worker process): "degraded", saying why, until its worker
    is alive; then "ok" with the worker's details."""
    body = healthz(client)
    deadline = time.monotonic() + PATIENCE_S
    while body["demo"]["workers"] == 0:  # the worker imports torch: seconds
        assert body["status"] == "degraded" and "no demo worker is alive" in body["reason"], body
        assert time.monotonic() < deadline, f"the demo worker never came up: {body}"
        time.sleep(0.1)
        body = healthz(client)
    assert body["status"] == "ok" and body["reason"] is None, body
    assert body["terms"] >= 12
    demo = body["demo"]
    assert demo["workers"] == 1 and demo["device"] == "cpu" and demo["errors"] == []
    assert {"busy", "queue", "queued_visitors", "in_flight", "client_cap", "max_queued"} <= set(
        demo
    )
    worker = next(w for w in demo["detail"] if w["ready"])
    assert worker["device"] == "cpu" and worker["torch_version"] and worker["error"] is None
    assert isinstance(worker["pid"], int) and worker["speed"] > 0


def test_healthz_is_degraded_without_a_demo_worker_and_ok_with_one(
    small_app: FastAPI, small_client: TestClient
) -> None:
    """demo_workers=0 and none connected: 200, "degraded" with the reason; pages serve and
    the demo answers 503. With a live worker (one thread of this process): "ok"."""
    body = healthz(small_client)
    assert body["status"] == "degraded", body
    assert body["reason"] == ("no demo worker is alive: experiments answer 503 until one connects")
    assert body["demo"]["workers"] == 0 and body["demo"]["starting"] == 0
    assert small_client.get("/terms/resnet").status_code == 200
    run = small_client.get("/api/demo", params={"preset": "residual-vs-plain"})
    assert run.status_code == 503 and run.json()["details"]["reason"] == "no_workers"
    with runner_in(small_app, thread_runner(ControlledEngine())):
        body = healthz(small_client)
    assert body["status"] == "ok" and body["reason"] is None, body
    assert body["demo"]["workers"] == 1 and body["demo"]["busy"] == 0
