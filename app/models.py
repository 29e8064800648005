"""Database tables. Text fields hold both the Markdown source and its rendered HTML,
rendered once at load time so the web process never parses Markdown."""

from sqlmodel import Field, SQLModel


class Category(SQLModel, table=True):
    slug: str = Field(primary_key=True)
    title: str
    description: str
    position: int


class Organization(SQLModel, table=True):
    slug: str = Field(primary_key=True)
    name: str
    url: str
    description: str


class Term(SQLModel, table=True):
    slug: str = Field(primary_key=True)
    title: str = Field(index=True)
    # Upper-case first letter of the title, "#" for digits and symbols (the A-Z index key).
    letter: str = Field(index=True)
    category_slug: str = Field(foreign_key="category.slug", index=True)
    summary: str
    definition: str
    definition_html: str
    background: str
    background_html: str
    usage_note: str
    usage_note_html: str
    formula: str | None = None
    formula_mathml: str | None = None
    demo_preset: str | None = None
    illustration_file: str | None = None
    illustration_alt: str | None = None
    illustration_caption: str | None = None
    # The work that introduced the idea (data/terms' introduced_in), its one link resolved
    introduced_title: str | None = None
    introduced_authors: str | None = None
    introduced_year: int | None = None
    introduced_url: str | None = None
    introduced_id: str | None = None  # "arXiv:1512.03385" or "doi:10...." when it has one


class Synonym(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    term_slug: str = Field(foreign_key="term.slug", index=True)
    name: str
    # Unique across terms and synonyms so /terms/<synonym-slug> can redirect unambiguously.
    slug: str = Field(unique=True)
    position: int


class RelatedTerm(SQLModel, table=True):
    term_slug: str = Field(foreign_key="term.slug", primary_key=True)
    related_slug: str = Field(foreign_key="term.slug", primary_key=True)
    position: int


class Mention(SQLModel, table=True):
    """A [[slug]] link in one term's text to another: the source of backlinks."""

    source_slug: str = Field(foreign_key="term.slug", primary_key=True)
    target_slug: str = Field(foreign_key="term.slug", primary_key=True, index=True)


class TermOrganization(SQLModel, table=True):
    term_slug: str = Field(foreign_key="term.slug", primary_key=True)
    organization_slug: str = Field(foreign_key="organization.slug", primary_key=True, index=True)
    note: str
    note_html: str
    position: int


class ReadMore(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    term_slug: str = Field(foreign_key="term.slug", index=True)
    title: str
    url: str
    position: int


class Meta(SQLModel, table=True):
    """Key/value facts about the loaded content (fingerprint, load time)."""

    key: str = Field(primary_key=True)
    value: str


class DemoCache(SQLModel, table=True):
    """Demo results shared by every worker (PostgreSQL deployments). Not content: a reload
    keeps it, since a result depends only on its config, torch version and device."""

    config_key: str = Field(primary_key=True)
    torch_version: str = Field(primary_key=True)
    device: str = Field(primary_key=True)
    result: str  # the result JSON, without `cached`
    created_at: str


class LMWeights(SQLModel, table=True):
    """Trained language-model weights shared by every worker (PostgreSQL deployments), keyed
    by what they were trained from (text, code, torch version, sizes). Not content either."""

    key: str = Field(primary_key=True)
    weights_hash: str
    payload: bytes  # torch.save of the weights, checkpoints and training log
    created_at: str


class DemoRun(SQLModel, table=True):
    """A demo run on the shared queue (PostgreSQL deployments): one row per config, so every
    web process joins the same run (single flight). Times are the database's epoch seconds."""

    __tablename__ = "demo_runs"

    config_key: str = Field(primary_key=True)
    run_id: str = Field(index=True, unique=True)
    job_id: int | None = None  # procrastinate's job
    state: str  # queued | running | done | failed | cancelled
    client: str
    priority: int = 0
    listeners: int = 0  # web processes following it
    job: str  # the Job as JSON
    created_at: float
    heartbeat_at: float  # refreshed by the worker while it runs


class DemoRunEvent(SQLModel, table=True):
    """A run's events in order, as its worker wrote them (web processes relay them)."""

    __tablename__ = "demo_run_events"

    run_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    event: str
    data: str  # JSON


class DemoWorkerRow(SQLModel, table=True):
    """A demo worker process on some machine, refreshed every second while it lives."""

    __tablename__ = "demo_workers"

    id: str = Field(primary_key=True)  # host:pid
    info: str  # WorkerInfo as JSON
    model: str | None = None  # its language model's TrainingProgress as JSON
    torch_version: str | None = None
    heartbeat_at: float
