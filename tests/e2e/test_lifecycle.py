"""The post lifecycle through Kafka: create, update, delete, and the image's life with it."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from infra.settings import Settings
from producers.publisher import UploadPublisher, build_upload
from sinks.blob_keys import blob_key
from sinks.object_store import ObjectStore
from tests.e2e.waiting import Row, query, wait_for
from tests.imagegen import distinct_png

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_update_and_delete_travel_as_events_and_orphaned_images_disappear(
    pipeline: Settings,
) -> None:
    settings = pipeline
    image = distinct_png(1234)
    key = blob_key(hashlib.sha256(image).hexdigest())
    store = ObjectStore(settings)

    async def send(*actions: tuple[str, ...]) -> None:
        async with UploadPublisher(settings) as publisher:
            for action, post_id, *rest in actions:
                if action == "upload":
                    await publisher.publish(
                        build_upload(post_id, rest[0], post_id, image, settings.max_image_bytes)
                    )
                elif action == "update":
                    await publisher.update_post(post_id, rest[0], rest[1])
                else:
                    await publisher.delete_post(post_id)

    def post(post_id: str) -> list[Row]:
        return query(
            settings, "SELECT title, description, image_id, decision FROM posts WHERE post_id = %s",
            (post_id,),
        )

    # posts travel on different partitions: wait for the original before its copy
    asyncio.run(send(("upload", "life-a", "alice")))
    wait_for("the original post", lambda: post("life-a"))
    asyncio.run(send(("upload", "life-b", "bob")))
    wait_for("the copy's post", lambda: post("life-b"))
    assert post("life-b")[0][2:] == ("life-a", "duplicate-reference")
    assert query(settings, "SELECT author, original_author FROM alerts WHERE post_id = 'life-b'") \
        == [("bob", "alice")]
    wait_for("the object", lambda: store.exists(key))

    asyncio.run(send(("update", "life-a", "sunset", "over the bay")))
    wait_for("the update", lambda: post("life-a")[0][:2] == ("sunset", "over the bay"))

    # deleting the original's post keeps the image: bob's post still shows it
    asyncio.run(send(("delete", "life-a")))
    wait_for("life-a deleted", lambda: not post("life-a"))
    assert query(settings, "SELECT ref_count FROM images WHERE image_id = 'life-a'") == [(1,)]
    assert store.exists(key)

    # the last post goes: the image, its cluster membership and its object go with it
    asyncio.run(send(("delete", "life-b")))
    wait_for("life-b deleted", lambda: not post("life-b"))
    assert not query(settings, "SELECT 1 FROM images WHERE image_id = 'life-a'")
    assert not query(settings, "SELECT 1 FROM cluster_members WHERE image_id = 'life-a'")
    assert not query(settings, "SELECT 1 FROM alerts WHERE post_id = 'life-b'")
    wait_for("the object deleted", lambda: not store.exists(key))

    # the signature left the index: the same bytes again are a new image, stored again
    asyncio.run(send(("upload", "life-c", "carol")))
    wait_for("life-c", lambda: post("life-c"))
    assert post("life-c")[0][2] == "life-c"
    wait_for("the object stored again", lambda: store.exists(key))
