"""Who is signed in: the session cookie looked up in ``web_sessions``, and the CSRF check every
state-changing form passes before anything is published.

Pages get ``SignedIn`` (no session: the browser is sent to sign in); the page's own JSON and
image endpoints get ``SignedInFetch`` (no session: a 401 problem, since a redirect to an HTML
form means nothing to ``fetch`` or ``<img>``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from web.pages import csrf
from web.pages.render import SignInRequired
from web.pages.sessions import COOKIE, Session, find_session
from web.problems import Problem
from web.services import Svc


async def _session(request: Request, svc: Svc) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    async with svc.connection() as conn:
        session = await find_session(conn, cookie)
    request.state.session = session
    return session


async def signed_in(request: Request, svc: Svc) -> Session:
    """FastAPI dependency of a page: the session, or the sign-in page."""
    session = await _session(request, svc)
    if session is None:
        raise SignInRequired
    return session


async def signed_in_fetch(request: Request, svc: Svc) -> Session:
    """FastAPI dependency of an endpoint the page's scripts and images call."""
    session = await _session(request, svc)
    if session is None:
        raise Problem(
            401, "not-signed-in",
            f"{request.url.path} needs a web session: sign in at /sign-in with an operator key",
        )
    return session


SignedIn = Annotated[Session, Depends(signed_in)]
SignedInFetch = Annotated[Session, Depends(signed_in_fetch)]


def check_form(form: Any, session: Session, what: str) -> None:
    """Refuse (403) a signed-in form that does not carry this session's CSRF token."""
    csrf.require(session.csrf_token, form.get(csrf.FIELD), what)
