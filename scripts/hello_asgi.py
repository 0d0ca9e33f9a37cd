"""The floor for `scripts/bench_gateway.py`: a bare ASGI hello-world for uvicorn.

It reads the whole request body (the benchmark sends it the gateway's own 50 KB multipart
uploads, and receiving them is part of any upload's cost) and answers a fixed 200. No framework,
no parsing, no I/O: what is left is loopback HTTP, uvicorn and the client, on the same box.
Run as ``python -m uvicorn scripts.hello_asgi:app``.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

BODY = b"hello, world\n"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":  # nothing to open or close
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body", False))
    await send({
        "type": "http.response.start", "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
    })
    await send({"type": "http.response.body", "body": BODY})
