"""Configuration objects (read), API tokens, and config-as-code apply/export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from tocsin.api.deps import Admin, Ctx, Reader
from tocsin.api.schemas import MAX_ID, TokenCreate
from tocsin.configfile import ConfigError, apply_config, export_config, load_config
from tocsin.core.durations import format_duration
from tocsin.services import access, catalog
from tocsin.storage.tables import (
    ApiTokenRow,
    IncidentRoleRow,
    ServiceRow,
    TeamMemberRow,
    TeamRow,
    UserRow,
)

router = APIRouter(prefix="/api/v1", tags=["configuration"])


class SeverityOut(BaseModel):
    name: str
    label: str
    description: str
    respond_within: str | None
    update_every: str | None
    pages: bool


class NamedOut(BaseModel):
    id: str
    name: str
    detail: dict[str, Any] = {}


@router.get("/severities", response_model=list[SeverityOut], summary="The severity scheme")
def severities(ctx: Ctx, _actor: Reader) -> list[SeverityOut]:
    with ctx.db.read() as session:
        return [
            SeverityOut(
                name=s.name,
                label=s.label,
                description=s.description,
                respond_within=format_duration(s.respond_within) if s.respond_within else None,
                update_every=format_duration(s.update_every) if s.update_every else None,
                pages=s.pages,
            )
            for s in catalog.severities(session)
        ]


@router.get("/incident-roles", response_model=list[NamedOut], summary="Incident roles")
def roles(ctx: Ctx, _actor: Reader) -> list[NamedOut]:
    with ctx.db.read() as session:
        rows = session.scalars(
            select(IncidentRoleRow)
            .where(IncidentRoleRow.archived.is_(False))
            .order_by(IncidentRoleRow.position)
        )
        return [NamedOut(id=r.name, name=r.label, detail={"required": r.required}) for r in rows]


@router.get("/users", response_model=list[NamedOut], summary="Users")
def users(ctx: Ctx, _actor: Reader) -> list[NamedOut]:
    with ctx.db.read() as session:
        rows = session.scalars(
            select(UserRow).where(UserRow.archived.is_(False)).order_by(UserRow.id)
        )
        return [
            NamedOut(id=u.id, name=u.name, detail={"email": u.email, "role": u.role}) for u in rows
        ]


@router.get("/teams", response_model=list[NamedOut], summary="Teams")
def teams(ctx: Ctx, _actor: Reader) -> list[NamedOut]:
    with ctx.db.read() as session:
        members: dict[str, list[str]] = {}
        for m in session.scalars(select(TeamMemberRow).order_by(TeamMemberRow.position)):
            members.setdefault(m.team_id, []).append(m.user_id)
        rows = session.scalars(
            select(TeamRow).where(TeamRow.archived.is_(False)).order_by(TeamRow.id)
        )
        return [
            NamedOut(id=t.id, name=t.name, detail={"members": members.get(t.id, [])}) for t in rows
        ]


@router.get("/services", response_model=list[NamedOut], summary="Services")
def services(ctx: Ctx, _actor: Reader) -> list[NamedOut]:
    with ctx.db.read() as session:
        rows = session.scalars(
            select(ServiceRow).where(ServiceRow.archived.is_(False)).order_by(ServiceRow.id)
        )
        return [NamedOut(id=s.id, name=s.name, detail={"team": s.team_id}) for s in rows]


class TokenOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    user: str | None
    token: str | None = None
    prefix: str | None = None
    revoked: bool = False


@router.post("/tokens", status_code=201, response_model=TokenOut, summary="Create an API token")
def create_token(body: TokenCreate, ctx: Ctx, _actor: Admin) -> TokenOut:
    with ctx.db.write() as session:
        issued = access.create_token(
            session, ctx.clock(), name=body.name, scopes=body.scopes, user_id=body.user
        )
        session.commit()
    return TokenOut(
        id=issued.id,
        name=issued.name,
        scopes=issued.scopes,
        user=issued.user_id,
        token=issued.token,
    )


@router.get(
    "/tokens", response_model=list[TokenOut], summary="List API tokens (never their values)"
)
def list_tokens(ctx: Ctx, _actor: Admin) -> list[TokenOut]:
    with ctx.db.read() as session:
        rows = session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
        return [
            TokenOut(
                id=r.id,
                name=r.name,
                scopes=list(r.scopes),
                user=r.user_id,
                prefix=r.prefix,
                revoked=r.revoked_at is not None,
            )
            for r in rows
        ]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
def revoke_token(token_id: Annotated[int, Path(ge=1, le=MAX_ID)], ctx: Ctx, _actor: Admin) -> None:
    with ctx.db.write() as session:
        access.revoke_token(session, ctx.clock(), token_id)
        session.commit()


@router.post(
    "/config/apply",
    summary="Apply a YAML configuration (body: the YAML text)",
    openapi_extra={
        "requestBody": {
            "content": {"application/yaml": {"schema": {"type": "string"}}},
            "required": True,
        }
    },
)
async def apply(
    request: Request,
    ctx: Ctx,
    _actor: Admin,
    dry_run: Annotated[bool, Query()] = False,
    prune: Annotated[bool, Query()] = False,
) -> JSONResponse:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return JSONResponse(
            status_code=422,
            content={"detail": "the configuration must be UTF-8 text", "errors": []},
        )
    return await run_in_threadpool(_apply_sync, ctx, text, dry_run, prune)


def _apply_sync(ctx: Any, text: str, dry_run: bool, prune: bool) -> JSONResponse:
    try:
        doc = load_config(text, "<request>")
        with ctx.db.write() as session:
            report = apply_config(session, doc, prune=prune, dry_run=dry_run)
            if dry_run:
                session.rollback()
            else:
                session.commit()
    except ConfigError as exc:
        errors = [{"path": e.path, "message": e.message, "line": e.line} for e in exc.errors]
        return JSONResponse(status_code=422, content={"detail": str(exc), "errors": errors})
    return JSONResponse(content={**report.to_dict(), "dry_run": dry_run})


@router.get(
    "/config/export", response_class=PlainTextResponse, summary="The live configuration as YAML"
)
def export(ctx: Ctx, _actor: Admin) -> PlainTextResponse:
    with ctx.db.read() as session:
        return PlainTextResponse(export_config(session), media_type="application/yaml")
