"""The API's JSON shapes: what a platform integrates against, and what /openapi.json documents."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DecisionKindName = Literal["new-cluster", "merge-center", "duplicate-reference"]
PostStatus = Literal["pending", "decided", "deleting", "rejected"]


class UploadAccepted(BaseModel):
    post_id: str
    status_url: str = Field(description="GET it to see the post pending, then decided")


class ImageRef(BaseModel):
    image_id: str
    sha256: str
    url: str = Field(description="where its bytes stream from (/v1/images/{sha256})")
    byte_size: int
    width: int
    height: int
    format: str
    first_post_id: str
    first_author: str


class Region(BaseModel):
    """Where a duplicate lies in its original: fractions of the original's width and height."""

    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)


class Refusal(BaseModel):
    """A rule of the verifier that refused a pair, and the figure that broke it."""

    rule: str = Field(
        description="the verifier's check: coverage, colours, clean-copy, overlay, overlays, "
        "geometry (keypoints aligned nothing) or dihedral-alignment (the hash's alignment "
        "would stretch a picture too far)",
    )
    finding: str = Field(description="what it found, e.g. changed-detail, not-an-overlay")
    why: str = Field(description="the figure and the threshold it broke")


class RefusedCandidate(BaseModel):
    """A stored picture the verifier compared with the upload and refused."""

    entry_id: str = Field(
        description="the post whose upload was compared: the image's first post, or a copy of "
        "it that the engine keeps as another view of the image",
    )
    image_id: str = Field(description="the stored image that entry shows")
    check: str = Field(description="the evidence it was checked by (a method string)")
    refusals: list[Refusal]


class Evidence(BaseModel):
    """How a duplicate matched the image it references (what Postgres keeps of the decision)."""

    method: str
    distance: float | None
    region: Region | None = Field(
        None, description="for a match aligned by keypoints (a crop, say): the part of the "
        "original the duplicate shows; None when whole pictures were compared",
    )
    reason: str | None = Field(
        None, description="the verifier's rule that accepted the match (identical-bytes, "
        "quick-clean-copy, clean-copy, overlay, overlay-alien-to-both); None for decisions "
        "recorded before reasons were",
    )
    reason_refusals: list[Refusal] | None = Field(
        default=None,
        description="the rules that refused the match before ``reason`` accepted it (a "
        "caption: clean-copy refused, then overlay accepted); None for decisions recorded "
        "before they were",
    )
    unexplained_share: float | None = Field(
        default=None, description="the share of the upload its original does not explain (what its "
        "author added: a caption, stickers, a frame, a page around it); None for decisions "
        "recorded before it was measured",
    )
    own_image: str | None = Field(
        default=None, description="the URL of the upload's own bytes, stored beside the reference "
        "because it added content of its own; None for a plain copy",
    )


class Decision(BaseModel):
    kind: DecisionKindName
    image: ImageRef = Field(description="the stored image this post shows (a duplicate's original)")
    cluster_id: str
    evidence: Evidence | None = Field(description="for a duplicate-reference, how it matched")
    decided_seq: int
    refused: list[RefusedCandidate] | None = Field(
        default=None,
        description="the first stored pictures the verifier refused on the way to this "
        "decision, in the order tried, each with the rules that refused it; None for decisions "
        "recorded before they were",
    )


class AlertInfo(BaseModel):
    """A duplicate posted by someone other than the original's author: possible IP theft."""

    post_id: str
    author: str
    original_author: str
    original_post_id: str
    image_sha256: str
    created_at: datetime


class Rejection(BaseModel):
    """Why the pipeline refused an upload the gateway had accepted (its dead letter)."""

    stage: str
    reason: str
    detail: str
    failed_at: str


class Post(BaseModel):
    post_id: str
    status: PostStatus
    author: str
    title: str
    description: str
    uploaded_at: str | None
    byte_size: int
    platform: str | None = Field(description="the platform key that published it, if the API did")
    decision: Decision | None
    alert: AlertInfo | None
    rejection: Rejection | None = None
    links: dict[str, str]


class PostPage(BaseModel):
    items: list[Post]
    next_cursor: str | None = Field(description="?cursor= for the next page; null at the end")


class AlertPage(BaseModel):
    items: list[AlertInfo]
    next_cursor: str | None


class PostPatch(BaseModel):
    """The post's text to change; a field left out keeps its current value."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=10000)


class LifecycleAccepted(BaseModel):
    post_id: str
    action: Literal["update", "delete"]
    status_url: str


class SearchMatch(BaseModel):
    """A stored image the searched picture is a copy of."""

    image: ImageRef
    evidence: Evidence
    posts: list[Post] = Field(description="posts showing the image (first post first)")


class SearchResult(BaseModel):
    """Whether the picture is already stored, decided by the engine against its current state;
    nothing was stored or changed. A platform key sees a match only through its own posts."""

    matches: list[SearchMatch] = Field(
        description="the stored image an upload of this picture would reference; empty if none"
    )
    searched_images: int = Field(description="images and aliases the engine held when it answered")


class Stats(BaseModel):
    uploads: int = Field(description="posts decided and held (deleted posts not counted)")
    images: int = Field(description="distinct images stored")
    bytes_saved: int = Field(description="bytes uploaded minus bytes stored")
    dedup_rate: float = Field(description="share of posts that reference an image already stored")
    clusters: int
    alerts: int
    dlq: int = Field(description="records on the dead-letter topic")


class Health(BaseModel):
    status: Literal["ok"]
    postgres: str
