"""Compress the first page, /config and /gradio_api/info on the wire.

Gradio 6.31 already installs a Brotli middleware, but it only compresses paths that end
in a file extension (.js, .css, ...). The page itself (~850 KB of HTML with the config
inside), /config and /gradio_api/info have none, so every learner downloaded them raw.
This middleware covers exactly the paths Gradio's leaves alone: brotli where the browser
accepts it (every current browser does), gzip otherwise. Event streams (queue results,
heartbeats) pass through untouched: Starlette's responder skips text/event-stream, so
streamed tokens are never held back in a compressor buffer.
"""
from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipResponder, IdentityResponder

# Brotli quality 1: on the 850 KB page 3 ms of CPU for 89 KB, against gzip-6's 18 ms for
# 98 KB (measured, bench/page.py); the server has one core to spare for it.
BROTLI_QUALITY = 1
GZIP_LEVEL = 6
MINIMUM_SIZE = 1024


class _BrotliResponder(IdentityResponder):
    content_encoding = "br"

    def __init__(self, app, minimum_size: int, quality: int):
        super().__init__(app, minimum_size)
        self.quality = quality
        self._compressor = None

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        import brotli  # a dependency of gradio itself

        if self._compressor is None:
            self._compressor = brotli.Compressor(quality=self.quality, mode=brotli.MODE_TEXT)
        out = self._compressor.process(body)
        return out + (self._compressor.flush() if more_body else self._compressor.finish())


class PageCompression:
    """ASGI middleware: brotli/gzip for responses whose path has no file extension."""

    def __init__(self, app, minimum_size: int = MINIMUM_SIZE):
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or "." in scope.get("path", "").rsplit("/", 1)[-1]:
            await self.app(scope, receive, send)  # files: Gradio's own middleware decides
            return
        accept = Headers(scope=scope).get("accept-encoding", "")
        if "br" in accept:
            responder = _BrotliResponder(self.app, self.minimum_size, BROTLI_QUALITY)
        elif "gzip" in accept:
            responder = GZipResponder(self.app, self.minimum_size, compresslevel=GZIP_LEVEL)
        else:
            responder = IdentityResponder(self.app, self.minimum_size)
        await responder(scope, receive, send)


def with_page_compression(launch_kwargs: dict) -> dict:
    """launch() kwargs with PageCompression added to the FastAPI app Gradio builds."""
    app_kwargs = dict(launch_kwargs.get("app_kwargs") or {})
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(PageCompression)]
    return dict(launch_kwargs, app_kwargs=app_kwargs)
