"""GET /embed/gl-term.js: the <gl-term> custom element, one self-contained ES module that other
sites load (with its SRI hash, published in the README) to preview our entries.

Served from a route rather than /static so its URL never changes: an embedder pins the file's
hash, and /static/ URLs carry a version. CORS without credentials is added for this path by
app/middleware/security.py (module scripts and SRI both need it)."""

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from app import urls
from app.templating import STATIC_DIR

router = APIRouter(tags=["previews"])

GL_TERM_FILE = STATIC_DIR / "embed" / "gl-term.js"
MEDIA_TYPE = "text/javascript"


@router.get(
    urls.gl_term_module(),
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
def read_gl_term_module() -> Response:
    """The <gl-term> element as an ES module: `<script type="module" src=".../embed/gl-term.js"
    integrity="sha384-..." crossorigin="anonymous">`, then `<gl-term slug="...">text</gl-term>`."""
    # An hour: a changed file (a new hash) reaches embedders soon after a release.
    return FileResponse(
        GL_TERM_FILE, media_type=MEDIA_TYPE, headers={"cache-control": "public, max-age=3600"}
    )
