"""Signing in with an operator key, and out.

The key is typed once into the form; the browser then holds only an opaque session id in an
HttpOnly, SameSite=Strict cookie (``web.pages.sessions``). Platform keys cannot sign in: the
page shows every platform's posts, which only an operator may see.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from web.keys import Role, find_key
from web.pages import csrf
from web.pages.auth import SignedIn, check_form
from web.pages.render import SIGN_IN_PATH, PageRoute, page
from web.pages.sessions import COOKIE, LIFETIME, close_session, open_session
from web.services import Svc

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LOGIN_CSRF_SECONDS = 3600
KEY_FIELD_MAX = 200
HOME = "/"


def _safe_next(target: object) -> str:
    """Where to go after signing in: a path on this server only. Never ``//host``, a URL, or a
    backslash or control character (browsers read ``/\\host`` as ``//host``)."""
    if (
        isinstance(target, str) and target.startswith("/") and not target.startswith("//")
        and "\\" not in target and target.isprintable()
    ):
        return target
    return HOME


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _sign_in_form(
    request: Request, next_path: str, error: str | None = None, status_code: int = 200
) -> Response:
    token = csrf.new_token()
    response = page(
        request, "sign_in.html",
        {"csrf_token": token, "next_path": next_path, "error": error}, status_code=status_code,
    )
    response.set_cookie(
        csrf.LOGIN_COOKIE, token, max_age=LOGIN_CSRF_SECONDS, path=SIGN_IN_PATH, httponly=True,
        samesite="strict", secure=_secure(request),
    )
    return response


@router.get(SIGN_IN_PATH)
async def sign_in_page(request: Request, next_path: str = Query(HOME, alias="next")) -> Response:
    return _sign_in_form(request, _safe_next(next_path))


@router.post(SIGN_IN_PATH)
async def sign_in(request: Request, svc: Svc) -> Response:
    async with request.form(max_files=0, max_fields=4) as form:
        csrf.require(
            request.cookies.get(csrf.LOGIN_COOKIE), form.get(csrf.FIELD), "sign-in"
        )
        plaintext = form.get("key")
        next_path = _safe_next(form.get("next"))
    if not isinstance(plaintext, str) or not 0 < len(plaintext.strip()) <= KEY_FIELD_MAX:
        return _sign_in_form(request, next_path, "Paste an operator key.", status_code=422)
    async with svc.connection() as conn:
        key = await find_key(conn, plaintext.strip())
        if key is None:
            return _sign_in_form(
                request, next_path,
                "That is not a known, unrevoked PicNix key.", status_code=401,
            )
        if key.role is not Role.OPERATOR:
            return _sign_in_form(
                request, next_path,
                f"Key {key.key_id} is a platform key of {key.name!r}; the web page shows every "
                "platform's posts, so it needs an operator key "
                "(`picnix keys create NAME --role operator`).",
                status_code=403,
            )
        session_id, _ = await open_session(conn, key)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE, session_id, max_age=int(LIFETIME.total_seconds()), path="/", httponly=True,
        samesite="strict", secure=_secure(request),
    )
    response.delete_cookie(csrf.LOGIN_COOKIE, path=SIGN_IN_PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SignedIn, svc: Svc) -> Response:
    async with request.form(max_files=0, max_fields=2) as form:
        check_form(form, session, "sign-out")
    async with svc.connection() as conn:
        await close_session(conn, request.cookies.get(COOKIE, ""))
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
