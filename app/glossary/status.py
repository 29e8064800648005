"""What the loaded content is: its term count and load time (the home page, /healthz)."""

from sqlalchemy import func
from sqlmodel import Session, select

from app.models import Meta, Term


def term_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Term)).one()


def loaded_at(session: Session) -> str | None:
    """When `glossary load` committed this content (ISO 8601), or None before any load."""
    meta = session.get(Meta, "loaded_at")
    return meta.value if meta else None
