"""Who is calling: an API key (`X-API-Key`) or a bearer JWT, then the caller's rate limit.

Failed authentications are counted per client address (`api/rate_limit.py`): past the
limit, that address gets 429 before any credential it sends is checked.

JWTs are HS256 with `JWT_SECRET` or RS256 with `JWT_PUBLIC_KEY`; `exp` is required and
`iss`/`aud` are checked when configured. The token names its organization in the `org`
claim and its role in `role` (default `member`); a user row for (org, `sub`) overrides
the role, so an admin can demote someone without reissuing tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import select

from api.deps import Principal, app_db, app_keys, app_settings
from api.rate_limit import (
    count_failed_authentication,
    enforce_rate_limit,
    refuse_guessing_client,
)
from core.infrastructure.settings import ApiSettings
from core.persistence.db import Database, Organization, User
from core.persistence.key_cache import KeyCache
from core.persistence.tenancy import KEY_SCHEME, OrgRole

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
bearer = HTTPBearer(auto_error=False)

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def unauthorized(why: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, why, headers=UNAUTHORIZED_HEADERS)


async def get_principal(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_header)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    settings, db = app_settings(request).api, app_db(request)
    presented = api_key or (credentials.credentials if credentials is not None else None)
    if not presented:
        raise unauthorized("missing credentials: send X-API-Key or Authorization: Bearer")
    await refuse_guessing_client(request, settings)
    try:
        if api_key or presented.startswith(f"{KEY_SCHEME}_"):
            principal = await _from_api_key(db, app_keys(request), presented)
        else:
            principal = await _from_jwt(db, settings, presented)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            await count_failed_authentication(request, settings)
        raise
    await enforce_rate_limit(request, principal.rate_limit_bucket, settings)
    return principal


async def _from_api_key(db: Database, keys: KeyCache, presented: str) -> Principal:
    key = await keys.verify(db, presented)
    if key is None:
        raise unauthorized("invalid or revoked API key")
    return Principal(org_id=key.org_id, role=OrgRole(key.role), subject=f"key:{key.id}")


def _verification_key(settings: ApiSettings) -> tuple[Any, str]:
    if settings.jwt_public_key:
        pem = settings.jwt_public_key
        if not pem.lstrip().startswith("-----BEGIN"):
            try:
                pem = Path(pem).read_text()
            except OSError:
                raise HTTPException(
                    status.HTTP_500_INTERNAL_SERVER_ERROR,
                    "server misconfigured: the JWT_PUBLIC_KEY file cannot be read",
                ) from None
        return pem, "RS256"
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value(), "HS256"
    raise unauthorized("bearer JWTs are not accepted: no JWT_SECRET or JWT_PUBLIC_KEY is set")


async def _from_jwt(db: Database, settings: ApiSettings, token: str) -> Principal:
    key, algorithm = _verification_key(settings)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={
                "require": ["exp", "sub"],
                "verify_aud": settings.jwt_audience is not None,
                "verify_iss": settings.jwt_issuer is not None,
            },
        )
    except jwt.PyJWTError as exc:
        raise unauthorized(f"invalid token: {exc}") from None
    org_id, subject = claims.get("org"), str(claims["sub"])
    if not isinstance(org_id, str):
        raise unauthorized("invalid token: no `org` claim")
    if not (_printable_claim(org_id) and _printable_claim(subject)):
        # Signed, but not something a database key may hold (NUL, control characters).
        raise unauthorized("invalid token: `org` and `sub` must be printable and short")
    async with db.session() as session:
        if await session.get(Organization, org_id) is None:
            raise unauthorized("invalid token: unknown organization")
        user = (
            (
                await session.execute(
                    select(User).where(User.org_id == org_id, User.subject == subject)
                )
            )
            .scalars()
            .first()
        )
    try:
        role = OrgRole(user.role if user is not None else claims.get("role", "member"))
    except ValueError:
        raise unauthorized(f"invalid token: unknown role {claims.get('role')!r}") from None
    return Principal(org_id=org_id, role=role, subject=f"jwt:{subject}")


def _printable_claim(value: str) -> bool:
    return 0 < len(value) <= 200 and value.isprintable()


CallerDep = Annotated[Principal, Depends(get_principal)]


async def require_writer(principal: CallerDep) -> Principal:
    """Starting runs, deciding gates, steering: admins and members, not viewers."""
    if not principal.can_write:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewers cannot change runs")
    return principal


async def require_admin(principal: CallerDep) -> Principal:
    if principal.role != OrgRole.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an organization admin")
    return principal


WriterDep = Annotated[Principal, Depends(require_writer)]
AdminDep = Annotated[Principal, Depends(require_admin)]
