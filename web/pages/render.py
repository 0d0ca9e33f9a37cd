"""How a page answers: Jinja2 templates (autoescaped), security headers, and the error page.

Every page route uses ``PageRoute``: a ``Problem`` raised anywhere below it (a post not found, a
refused upload, a missing CSRF token) becomes an HTML page with the problem's status and detail
instead of the API's JSON, and a request without a session is sent to the sign-in page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.templating import Jinja2Templates

from web.problems import Problem

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
SIGN_IN_PATH = "/sign-in"

# Scripts and styles only from this server (no inline script, no CDN): an injected <script> in
# a title could not run even if escaping ever failed. Pages are never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# How each method string of a decision reads to a moderator (engine.default_method.Evidence).
METHOD_TEXT = {
    "default:sha256": "identical bytes (SHA-256)",
    "default:hash+quick-pixels": "perceptual hash, then a quick pixel check (a clean copy)",
    "default:hash+pixels": "perceptual hash, then the aligned pixel check",
    "default:orb+ransac+pixels": (
        "keypoints matched (ORB + RANSAC), then the aligned pixel check: a crop, rotation or "
        "perspective change"
    ),
    "default:hash-cluster": "perceptual hash near a cluster's center",
}
# The same, as short as a line of a decision's refused candidates can afford
CHECK_TEXT = {
    "default:hash+pixels": "hash alignment",
    "default:orb+ransac+pixels": "keypoints",
}


def _bytes(n: float) -> str:
    """A byte count for people: 1.2 MB rather than 1234567."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _when(iso: str) -> str:
    """An ISO 8601 timestamp as people read it (to the second, in UTC); unparseable text as is."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=jinja2.StrictUndefined
)
_ENV.filters["bytes"] = _bytes
_ENV.filters["when"] = _when
_ENV.globals["method_text"] = METHOD_TEXT
_ENV.globals["check_text"] = CHECK_TEXT
templates = Jinja2Templates(env=_ENV)


class SignInRequired(Exception):
    """No live session behind the request's cookie: the page sends the browser to sign in."""


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """Render a template with the signed-in session (if any) available as ``session``."""
    context.setdefault("session", getattr(request.state, "session", None))
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='')}", status_code=303)


class PageRoute(APIRoute):
    """An APIRoute whose failures are pages: Problems render error.html, no session redirects."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except Problem as problem:
                response = page(
                    request, "error.html", {"problem": problem}, status_code=problem.status
                )
                response.headers.update(problem.headers)
                return response

        return handle
