"""Adds the web page to the API's application: its routers and its static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from web.pages import dashboard, routes_forms, routes_signin, routes_views
from web.pages.render import STATIC_DIR


def install_pages(app: FastAPI) -> None:
    for router in (
        routes_signin.router, routes_views.router, routes_views.fetch_router,
        routes_forms.router, dashboard.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
