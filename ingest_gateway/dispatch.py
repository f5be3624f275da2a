"""Sends each request to its handler by path: the gateway's few routes, without aiohttp's router.

aiohttp's low-level ``web.Server`` calls one function per request, and this is it: the Application,
its router and match info cost ~30k of the ~320k instructions of a webhook request (callgrind). The
rules are the router's: an exact path answers GET and HEAD (405 with ``Allow`` otherwise), a
``prefix/{segment}`` route takes exactly one non-empty segment, anything else is 404. Like the
Application, it answers ``Expect: 100-continue`` before the handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiohttp import HttpVersion11, hdrs, web

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
SegmentHandler = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]

READ_METHODS = frozenset({"GET", "HEAD"})  # what aiohttp's add_get allows


class Dispatcher:
    def __init__(self) -> None:
        self._paths: dict[str, Handler] = {}
        self._segments: dict[str, tuple[SegmentHandler, frozenset[str] | None]] = {}

    def add_get(self, path: str, handler: Handler) -> None:
        """``path`` exactly, for GET and HEAD."""
        self._paths[path] = handler

    def add_segment(self, prefix: str, handler: SegmentHandler, methods: Collection[str] | None = READ_METHODS) -> None:
        """``prefix/{segment}``: the handler gets the segment; ``methods=None`` leaves the method to it."""
        self._segments[prefix.rstrip("/")] = (handler, None if methods is None else frozenset(methods))

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if hdrs.EXPECT in request.headers:
            await answer_expect(request)
        path = request.path
        method = request.method
        page = self._paths.get(path)
        if page is not None:
            if method not in READ_METHODS:
                raise web.HTTPMethodNotAllowed(method, READ_METHODS)
            return await page(request)
        parent, _, segment = path.rpartition("/")
        route = self._segments.get(parent)
        if route is None or not segment:
            raise web.HTTPNotFound()
        handler, methods = route
        if methods is not None and method not in methods:
            raise web.HTTPMethodNotAllowed(method, methods)
        return await handler(request, segment)


async def answer_expect(request: web.BaseRequest) -> None:
    """What aiohttp's router did for every route: ``100 Continue``, so the client sends its body now.

    Without it curl waits a second before sending a body over 1 KiB. Any other expectation is 417.
    """
    if request.version != HttpVersion11:
        return
    expect = request.headers[hdrs.EXPECT]
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the response's own bytes start after this line
    await request.writer.drain()
