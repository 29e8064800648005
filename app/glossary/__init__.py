"""The read side of the glossary: one function builds each view model (app/views.py) from
the database, and both the page and its JSON twin are that view.

shared.py holds NotFound and the term reference every list uses; then one module per kind
of view: terms.py (the A-Z index, a term's page, which term a URL names), categories.py,
organizations.py, home.py, search.py (results, "did you mean"), jsonld.py (schema.org) and
status.py (term count, load time). Builders raise NotFound; they never redirect: a route
decides that (see canonical_slug and app/routes/glossary.py).
"""

from app.glossary.categories import build_category, build_category_list
from app.glossary.home import build_home
from app.glossary.jsonld import SITE_DESCRIPTION, SITE_NAME, build_glossary
from app.glossary.organizations import build_organization, build_organization_list
from app.glossary.search import build_search, closest_terms
from app.glossary.shared import NotFound
from app.glossary.status import loaded_at, term_count
from app.glossary.terms import build_term, build_term_list, canonical_slug

__all__ = [
    "SITE_DESCRIPTION",
    "SITE_NAME",
    "NotFound",
    "build_category",
    "build_category_list",
    "build_glossary",
    "build_home",
    "build_organization",
    "build_organization_list",
    "build_search",
    "build_term",
    "build_term_list",
    "canonical_slug",
    "closest_terms",
    "loaded_at",
    "term_count",
]
