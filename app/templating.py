"""The Jinja environment (filters and globals shared by every template) and `render`."""

import hashlib
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from app import urls
from app.glossary import SITE_NAME
from app.text import index_letter

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def json_for_script(value: Any) -> Markup:
    """JSON safe inside <script type="application/ld+json">: no '<', '>' or '&' survive."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return Markup(text)  # noqa: S704  (escaped above)


@cache
def static_url(path: str) -> str:
    """URL of a static file with a content hash, so browsers may cache it for long."""
    file = STATIC_DIR / path
    digest = hashlib.blake2b(file.read_bytes(), digest_size=6).hexdigest() if file.exists() else "0"
    return f"/static/{path}?v={digest}"


def groupby_letter(terms: Iterable[Any]) -> list[tuple[str, list[Any]]]:
    """Terms (already in title order) grouped under their A-Z index letter."""
    groups: dict[str, list[Any]] = {}
    for term in terms:
        groups.setdefault(index_letter(term.title), []).append(term)
    return sorted(groups.items())


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.filters["json_for_script"] = json_for_script
    templates.env.filters["groupby_letter"] = groupby_letter
    templates.env.globals["static_url"] = static_url
    templates.env.globals["urls"] = urls
    templates.env.globals["site_name"] = SITE_NAME
    return templates


def render(request: Request, template: str, context: dict[str, Any], **response: Any) -> Response:
    """A template rendered with the app's environment (`response`: status_code, media_type)."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, **response)
