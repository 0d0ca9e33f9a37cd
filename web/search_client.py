"""The API's side of a search: the picture goes to a worker's ``POST /search``
(``stream_processors.search_view``), since only the worker holding the engine can answer it.

Any worker will do (each forwards to the engine's owner), so the configured ones are tried in
order until one answers; only when none can be reached is the search unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

SEARCH_PATH = "/search"
SEARCH_TIMEOUT_SECONDS = 60.0


class SearchUnavailable(RuntimeError):
    """No worker answered; the message names each one tried and how it failed."""


@dataclass(frozen=True)
class WorkerAnswer:
    status: int
    body: dict[str, Any]


class WorkerSearch:
    """One HTTP session to the workers for the server's lifetime."""

    def __init__(self, urls: list[str], timeout_s: float = SEARCH_TIMEOUT_SECONDS) -> None:
        if not urls:
            raise ValueError("searching needs at least one worker web URL")
        self._urls = urls
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WorkerSearch:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def search(self, image: bytes) -> WorkerAnswer:
        if self._session is None:
            raise RuntimeError("WorkerSearch used outside its `async with`")
        failures: list[str] = []
        for url in self._urls:
            try:
                async with self._session.post(
                    url + SEARCH_PATH, data=image,
                    headers={"Content-Type": "application/octet-stream"},
                ) as resp:
                    body = await resp.json(content_type=None)
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
                continue
            except (aiohttp.ContentTypeError, ValueError) as exc:
                failures.append(f"{url}: answered with no JSON ({exc})")
                continue
            if not isinstance(body, dict):
                failures.append(f"{url}: answered {type(body).__name__}, not a JSON object")
                continue
            return WorkerAnswer(resp.status, body)
        raise SearchUnavailable("no worker answered the search: " + "; ".join(failures))
