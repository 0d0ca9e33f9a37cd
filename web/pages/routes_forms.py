"""The page's state-changing forms: upload, edit, delete. Each checks the session's CSRF token
first, then goes through the API's own publishing path (``publish_upload``, ``publish_update``,
``publish_deletion``), so a change made here is validated, recorded and ordered as one made
through ``/v1``, and answered by a redirect (post/redirect/get)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import UploadFile

from web.pages.auth import SignedIn, check_form
from web.pages.render import PageRoute, page
from web.problems import Problem
from web.routes_posts import publish_deletion, publish_update
from web.routes_uploads import TEXT_FIELD_MAX_BYTES, form_text, publish_upload
from web.services import Svc

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TEXT_FORM_FIELDS = 4  # csrf_token, title, description, and room for one more


@router.get("/upload")
async def upload_page(request: Request, session: SignedIn) -> Response:
    post_id = request.query_params.get("post")
    return page(request, "upload.html", {"csrf_token": session.csrf_token, "post_id": post_id})


@router.post("/upload")
async def upload(request: Request, session: SignedIn, svc: Svc) -> Response:
    cap = svc.settings.max_image_bytes
    async with request.form(max_files=1, max_fields=8, max_part_size=TEXT_FIELD_MAX_BYTES) as form:
        check_form(form, session, "upload")
        image_part = form.get("image")
        if not isinstance(image_part, UploadFile) or not image_part.filename:
            raise Problem(422, "missing-field", "choose an image file to upload")
        image = await image_part.read(cap + 1)
        filename = image_part.filename
        author = form_text(form, "author", required=True)
        title = form_text(form, "title", required=False)
        description = form_text(form, "description", required=False)
    post_id, _ = await publish_upload(
        svc, session.key, author=author, title=title, description=description, image=image,
        filename=filename,
    )
    return RedirectResponse(f"/upload?post={quote(post_id)}", status_code=303)


@router.post("/posts/{post_id}/edit")
async def edit(request: Request, post_id: str, session: SignedIn, svc: Svc) -> Response:
    async with request.form(max_files=0, max_fields=TEXT_FORM_FIELDS) as form:
        check_form(form, session, f"edit of post {post_id}")
        title = form_text(form, "title", required=False)
        description = form_text(form, "description", required=False)
    await publish_update(svc, session.key, post_id, title=title, description=description)
    notice = quote("Edit sent: it shows once the pipeline has applied it.")
    return RedirectResponse(f"/posts/{quote(post_id)}?notice={notice}", status_code=303)


@router.post("/posts/{post_id}/delete")
async def delete(request: Request, post_id: str, session: SignedIn, svc: Svc) -> Response:
    async with request.form(max_files=0, max_fields=2) as form:
        check_form(form, session, f"deletion of post {post_id}")
    await publish_deletion(svc, session.key, post_id)
    return RedirectResponse(f"/?deleted={quote(post_id)}", status_code=303)

