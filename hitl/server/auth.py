"""Who is calling: a bearer token (or the web inbox's cookie holding one), and its role.

Every endpoint but `/healthz` needs a token. The cookie is `HttpOnly` and `SameSite=Strict`,
and a request that changes anything with it must also carry the `X-Hitl-CSRF` header, which
a page of another site cannot add, so another site cannot act with a signed-in browser.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, HTTPException, Request

from hitl.checkpoints.stores import Role, Token, TokenStore

COOKIE = "hitl_token"
CSRF_HEADER = "X-Hitl-CSRF"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _unauthenticated(detail: str) -> HTTPException:
    """A 401 that names the scheme to authenticate with (the JSON `type` is `Unauthenticated`,
    as for the service's error of that name)."""
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="hitl"'})


def principal(request: Request) -> Token:
    """The token the request carries; 401 if it carries none, or one that is not valid."""
    tokens: TokenStore = request.app.state.tokens
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _unauthenticated(
                "the Authorization header must be 'Bearer <token>'; create a token with "
                "`hitl token create NAME --role viewer|approver|admin`"
            )
        from_cookie = False
    else:
        secret = request.cookies.get(COOKIE, "")
        from_cookie = True
        if not secret:
            raise _unauthenticated(
                "this endpoint needs a token: send 'Authorization: Bearer <token>' (create one "
                "with `hitl token create NAME --role viewer|approver|admin`)"
            )
    token = tokens.authenticate(secret.strip())
    if token is None:
        raise _unauthenticated(
            "the token is not valid (mistyped, or revoked); ask an admin for a new one"
        )
    if from_cookie and request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise HTTPException(
            403, f"a request signed in by cookie must carry the {CSRF_HEADER} header"
        )
    request.state.principal = token
    return token


def signed_in(request: Request) -> Token | None:
    """`principal`, or None where it would refuse: for pages that send a stranger to sign in,
    and for streams that end when their token is revoked."""
    try:
        return principal(request)
    except HTTPException:
        return None


async def authenticated(request: Request) -> Token:
    """`principal` as a dependency on the event loop: one indexed read of a small table costs
    less than the hop to a worker thread that a plain function dependency takes."""
    return principal(request)


def require(role: Role) -> Callable[..., Awaitable[Token]]:
    """A dependency: the caller's token, which must include `role` (403 if it does not)."""

    async def check(token: Token = Depends(authenticated)) -> Token:  # noqa: B008
        if not token.may(role):
            raise HTTPException(
                403,
                f"the token {token.name!r} has the role {token.role!r}; this needs {role!r} "
                "(viewers read, approvers decide, admins also reconcile and manage tokens)",
            )
        return token

    return check


def token_summary(token: Token) -> dict[str, Any]:
    return {"name": token.name, "role": token.role}
