"""Who is calling: every /v1 request carries ``Authorization: Bearer KEY``, then its key's
rate limit applies.

Checked before the body is read, so a request without a valid key costs one header parse and
one index lookup, never an upload's worth of parsing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from web.keys import ApiKey, find_key
from web.problems import Problem
from web.ratelimit import retry_after_header
from web.services import Svc

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="picnix"'}


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers=_CHALLENGE)


def bearer_token(header: str | None) -> str:
    """The key from an Authorization header, or a 401 saying what is wrong with the header."""
    if not header:
        raise _unauthorized(
            "no Authorization header: send 'Authorization: Bearer <key>' "
            "(a key is made with `picnix keys create NAME`)"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(
            f"the Authorization header must be 'Bearer <key>', not a {scheme!r} credential"
        )
    return token.strip()


# Declared so /openapi.json documents bearer auth (and /docs offers to send a key); the header is
# parsed below, so a wrong one gets a 401 that says what is wrong rather than a bare 403.
_BEARER = HTTPBearer(auto_error=False, description="an API key from `picnix keys create`")


async def caller(
    request: Request, svc: Svc,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
) -> ApiKey:
    """FastAPI dependency: the calling key, after authentication and its rate limit."""
    token = bearer_token(request.headers.get("authorization"))
    async with svc.connection() as conn:
        key = await find_key(conn, token)
    if key is None:
        raise _unauthorized("the bearer key is not a known, unrevoked PicNix API key")
    wait = svc.limiter.acquire(key.key_id)
    if wait > 0:
        s = svc.settings
        raise Problem(
            429, "rate-limited",
            f"key {key.key_id} ({key.name}) is over its limit of {s.api_rate_per_minute} requests "
            f"a minute (burst {s.api_rate_burst}); retry in {wait:.1f} s",
            headers={"Retry-After": retry_after_header(wait)},
        )
    request.state.key = key
    return key


Caller = Annotated[ApiKey, Depends(caller)]
