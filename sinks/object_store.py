"""Plain S3 calls through the ``minio`` client, so any S3 store can replace MinIO."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from minio import Minio
from minio.error import S3Error
from urllib3 import BaseHTTPResponse

from infra.settings import Settings

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


STREAM_CHUNK_BYTES = 64 * 1024


@dataclass
class StoredObject:
    """An object being read: its size and type, and its bytes as chunks; ``close`` it after."""

    size: int
    content_type: str
    _response: BaseHTTPResponse

    def chunks(self) -> Iterator[bytes]:
        yield from self._response.stream(STREAM_CHUNK_BYTES)

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


class ObjectStore:
    def __init__(self, settings: Settings) -> None:
        self._bucket = settings.s3_bucket
        self._client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
        )

    def ensure_bucket(self) -> None:
        if not self._client.bucket_exists(self._bucket):
            self._client.make_bucket(self._bucket)

    def exists(self, key: str) -> bool:
        try:
            self._client.stat_object(self._bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                return False
            raise
        return True

    def open(self, key: str) -> StoredObject | None:
        """Start reading ``key`` (None when it is not there): the bytes are streamed, never
        held whole, so serving a 10 MiB image costs a chunk of memory, not the image."""
        try:
            resp = self._client.get_object(self._bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                return None
            raise
        size = int(resp.headers.get("Content-Length", "0"))
        content_type = resp.headers.get("Content-Type", "application/octet-stream")
        return StoredObject(size, content_type, resp)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``; keys are content addresses, so a rewrite is a no-op."""
        self._client.put_object(
            self._bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    def delete(self, key: str) -> None:
        """Remove ``key``; S3 deletes are idempotent, a missing key is not an error."""
        self._client.remove_object(self._bucket, key)

    def list_keys(self, prefix: str = "") -> list[str]:
        return [
            o.object_name
            for o in self._client.list_objects(self._bucket, prefix=prefix, recursive=True)
            if o.object_name is not None
        ]

    def count_and_bytes(self) -> tuple[int, int]:
        """Objects in the bucket and their total size, in one listing (for the report only)."""
        count = size = 0
        for obj in self._client.list_objects(self._bucket, recursive=True):
            count += 1
            size += obj.size or 0
        return count, size
