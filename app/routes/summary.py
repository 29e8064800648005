"""GET /api/terms/{slug}/summary: a term in brief, in the shape of Wikipedia's page summary,
read by our own hover previews and by <gl-term> on other sites (CORS without credentials:
app/middleware/security.py). It sets no cookie and varies only with the content and the
host it is asked on (its URLs are absolute)."""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app import urls
from app.db import SessionDep
from app.errors import API_ERRORS
from app.glossary import canonical_slug
from app.glossary.summary import TermSummary, build_summary

router = APIRouter(tags=["previews"], responses=API_ERRORS)


@router.get(
    "/api/terms/{slug}/summary",
    response_model=TermSummary,
    responses={301: {"description": "A synonym or non-canonical slug; follow Location"}},
)
def read_term_summary(request: Request, slug: str, session: SessionDep) -> TermSummary | Response:
    """One term in brief (title, plain and HTML extract, category, thumbnail, absolute URLs,
    synonyms), in the shape of Wikipedia's REST page summary."""
    canonical = canonical_slug(session, slug)
    if canonical != slug:
        return RedirectResponse(urls.term_summary(canonical), status_code=301)
    data_dir = request.app.state.settings.data_dir
    return build_summary(session, slug, str(request.base_url), data_dir)
