"""The web page: `/` and its files under `/ui/` (plain JS shipped in fronde/serve/static, no CDN), and the
model-free app behind `fronde dashboard`.

The page asks `/ui/config.json` what this server offers (the chat playground, the runs dashboard, whether a key is
needed) and then talks to the same APIs any client uses: /v1/chat/completions and /api/runs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response

from fronde.serve.auth import check_key, is_public
from fronde.serve.protocol import error_body
from fronde.serve.runs import RunsConfig, runs_router

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Everything comes from this server: a page that tried to load anything from elsewhere would fail offline anyway,
# and model output is only ever inserted as text, so no script can sneak in through a reply.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                      "base-uri 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _files() -> dict[str, Path]:
    """The shipped files by name: the only paths /ui/ serves (nothing is looked up from the URL)."""
    return {p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES}


def ui_router(chat: bool, runs: bool, auth: bool) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    files = _files()

    @router.api_route("/", methods=["GET", "HEAD"])
    def index() -> FileResponse:
        return FileResponse(files["index.html"], media_type=MEDIA_TYPES[".html"], headers=HEADERS)

    @router.get("/ui/config.json")
    def config() -> JSONResponse:
        return JSONResponse({"chat": chat, "runs": runs, "auth": auth}, headers=HEADERS)

    @router.get("/ui/{name}")
    def static(name: str) -> Response:
        path = files.get(name)
        if path is None:
            return JSONResponse(error_body(f"no file {name!r} in the web UI", code="not_found"), status_code=404)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)

    @router.get("/favicon.ico")
    def favicon() -> FileResponse:
        return FileResponse(files["favicon.svg"], media_type=MEDIA_TYPES[".svg"], headers=HEADERS)

    return router


def create_dashboard_app(runs: RunsConfig, api_keys: tuple[str, ...] = ()) -> FastAPI:
    """`fronde dashboard`: the page and /api/runs without a model (no torch engine, nothing to load)."""
    app = FastAPI(title="fronde dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        refused = None if is_public(request.url.path) else check_key(api_keys, request)
        return refused if refused is not None else await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())[1:]) or None
        return JSONResponse(error_body(f"{field}: {err.get('msg')}", param=field), status_code=400)

    app.include_router(ui_router(chat=False, runs=True, auth=bool(api_keys)))
    app.include_router(runs_router(runs))
    return app
