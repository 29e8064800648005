"""/healthz: is the database reachable, how many terms, are the demo's workers alive.

Pages never depend on the demo: with no worker alive the answer is still 200, with status
"degraded" and the reason, so a load balancer keeps the pages in service."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from app.glossary import loaded_at, term_count
from app.views import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def read_health(request: Request) -> JSONResponse:
    """200 when the database answers with content loaded, 503 otherwise."""
    runner = getattr(request.app.state, "demo_runner", None)
    demo = runner.status() if runner is not None else {"workers": 0, "starting": 0}
    try:
        with Session(request.app.state.engine) as session:
            health = Health(
                status="ok",
                database="ok",
                terms=term_count(session),
                loaded_at=loaded_at(session),
                demo=demo,
            )
    except Exception:
        health = Health(status="error", database="unreachable", terms=0, loaded_at=None, demo=demo)
    status = 200 if health.status == "ok" and health.terms > 0 else 503
    if status == 503 and health.status == "ok":
        health.status = "empty"
    elif status == 200 and demo["workers"] == 0:
        health.status = "degraded"
        health.reason = (
            f"no demo worker is alive yet ({demo['starting']} starting)"
            if demo["starting"]
            else "no demo worker is alive: experiments answer 503 until one connects"
        )
    return JSONResponse(
        health.model_dump(), status_code=status, headers={"cache-control": "no-store"}
    )
