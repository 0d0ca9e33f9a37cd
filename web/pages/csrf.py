"""CSRF tokens for the web page's forms.

A signed-in form carries its session's token (kept server-side with the session). The sign-in
form, before any session exists, uses a double-submit token: a random value in a short-lived
cookie and the same value in the form; a page of another site can send the cookie but cannot
read it to put it in the form. SameSite=Strict cookies are a second guard, not the only one.
"""

from __future__ import annotations

import hmac
import secrets

from web.problems import Problem

FIELD = "csrf_token"
LOGIN_COOKIE = "picnix_login_csrf"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def require(expected: str | None, presented: object, what: str) -> None:
    """Refuse (403) a state-changing form whose token is missing or not the expected one."""
    if not isinstance(presented, str) or not presented:
        raise Problem(403, "csrf-token-missing", f"{what}: the form carries no {FIELD}; reload "
                      "the page and submit it again")
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Problem(403, "csrf-token-invalid", f"{what}: the form's {FIELD} is not this "
                      "session's; reload the page and submit it again")
