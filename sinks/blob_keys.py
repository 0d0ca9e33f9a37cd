"""Content-addressed object keys: the same bytes always land on the same key, stored once."""

from __future__ import annotations

import re

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def blob_key(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
    return f"sha256/{sha256[:2]}/{sha256}"


def sha256_of_key(key: str) -> str:
    """The content hash a key of ``blob_key`` names."""
    sha256 = key.rsplit("/", 1)[-1]
    if blob_key(sha256) != key:
        raise ValueError(f"not a content-addressed key: {key!r}")
    return sha256
