"""/docs: Swagger UI over /openapi.json, from vendored files (the CSP forbids CDNs)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def read_api_docs(request: Request) -> Response:
    """Swagger UI over /openapi.json, from vendored files."""
    return render(request, "docs.html", {})
