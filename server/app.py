"""The HTTP API and the web page: the agent's public API (`Vesalius`) over the network, nothing more.

Every error is JSON `{"error": ..., "hint": ...}` with a 4xx status, the same one line the command line prints; a 500
says only that something failed and its request id, because an exception's text may quote a question or a header.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.exceptions import MultipartParseError
from starlette.exceptions import HTTPException

from vesalius import __version__
from vesalius.agent.answer import Answer, Turn
from vesalius.agent.config import Settings, load_settings
from vesalius.agent.context import ClinicalContext
from vesalius.agent.context_files import MAX_FILE_BYTES, context_from_bytes
from vesalius.agent.conversations import THREAD_ID
from vesalius.agent.service import EXPORT_MEDIA, ExportFormat, Vesalius
from vesalius.errors import VesaliusError
from vesalius.server.guards import JSON_BODY_BYTES, BodyLimit, RateLimiter, token_matches
from vesalius.server.studies import StudyStore
from vesalius.server.uploads import Upload, UploadError
from vesalius.vision import coded
from vesalius.vision.errors import StudyError
from vesalius.vision.study import Study, StudySummary
from vesalius.vision.windows import auto_window, parse_window

log = logging.getLogger("vesalius.server")
UPLOAD_PATH = "/api/studies"
CONTEXT_PATH = "/api/threads/{thread_id}/context"
_CONTEXT_PATH = re.compile(r"/api/threads/[^/]+/context")
CONTEXT_MEDIA = ("text/plain", "application/fhir+json", "application/json", "application/dicom")
_HEATMAP = re.compile(r"[A-Za-z0-9._-]{1,200}\.png")


class StudyCreated(BaseModel):
    study_id: str
    summary: StudySummary


class NewThread(BaseModel):
    model_config = ConfigDict(extra="forbid")

    study_id: str | None = Field(
        None, max_length=64, description="an uploaded study; leave it out for questions about medicine in general"
    )
    audience: Literal["clinician", "patient"] = "clinician"
    modality: str | None = Field(None, max_length=16, description="labels a plain image (CR, CT ...)")
    series: int | None = Field(None, ge=0, le=2**31 - 1)
    window: str | None = Field(None, max_length=64, description='a preset name, "auto" or "center,width"')


class ThreadCreated(BaseModel):
    thread_id: str


class Thread(BaseModel):
    thread_id: str
    study_id: str | None
    audience: str | None
    turns: list[Turn]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    study_id: str | None = Field(
        None, max_length=64, description="another uploaded study: opened in the thread and compared with the one before"
    )
    context: str | None = Field(
        None,
        max_length=4000,
        description="clinical context (history, indication, an earlier report): de-identified, kept by the thread",
    )


class Problem(BaseModel):
    error: str
    hint: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem}
    for code in (400, 401, 404, 409, 410, 413, 415, 422, 429)  # every route may answer these, all as Problem
}


def create_app(settings: Settings | None = None, agent: Vesalius | None = None) -> FastAPI:
    settings = settings or load_settings()
    vesalius = agent or Vesalius(settings)
    studies = StudyStore(settings.studies_path)
    limiter = RateLimiter(settings.rate_limit_per_minute)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        vesalius.close()  # after uvicorn has let the answers in flight finish

    app = FastAPI(
        title="Vesalius",
        version=__version__,
        summary="Questions about medical images, answered with calibrated findings and cited knowledge. "
        "Decision support, not a diagnosis.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
        responses=_ERRORS,
    )
    max_upload = settings.max_upload_mb * 1024**2

    def body_limit(path: str) -> int:
        if path == UPLOAD_PATH:
            return max_upload
        return MAX_FILE_BYTES if _CONTEXT_PATH.fullmatch(path) else JSON_BODY_BYTES

    app.add_middleware(BodyLimit, limit_for=body_limit)

    def caller(request: Request) -> str:
        if settings.api_token:
            if not token_matches(request.headers.get("authorization"), settings.api_token):
                raise _Problem(401, "a valid bearer token is required", "Send 'Authorization: Bearer <token>'")
            who = "token"
        else:
            who = request.client.host if request.client else "unknown"
        wait = limiter.take(who)
        if wait:
            raise _Problem(
                429,
                f"over the limit of {settings.rate_limit_per_minute} requests a minute",
                f"Wait {wait:.0f} s",
                {"Retry-After": str(max(1, round(wait)))},
            )
        return who

    guarded = [Depends(caller)]

    @app.exception_handler(_Problem)
    async def _problem(_: Request, exc: _Problem) -> JSONResponse:
        return JSONResponse({"error": exc.problem, "hint": exc.remedy}, exc.status, headers=exc.headers)

    @app.exception_handler(VesaliusError)
    async def _vesalius_error(_: Request, exc: VesaliusError) -> JSONResponse:
        status = 422 if isinstance(exc, StudyError) else 409 if "still answering" in exc.problem else 400
        return JSONResponse({"error": " ".join(exc.problem.split()), "hint": exc.remedy}, status)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "hint": "See /openapi.json"}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(
            {
                "error": f"invalid request: {where or 'body'}: {first.get('msg', 'not valid')}",
                "hint": "See /openapi.json",
            },
            422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.error("request %s failed: %s", request_id, type(exc).__name__)  # the message may quote user data
        return JSONResponse(
            {"error": f"the server failed on this request (id {request_id})", "hint": "Try again; report the id"}, 500
        )

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.post(
        UPLOAD_PATH,
        status_code=201,
        dependencies=guarded,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                                "modality": {"type": "string", "maxLength": 16},
                            },
                            "required": ["files"],
                        }
                    }
                },
            }
        },
    )
    async def upload_study(request: Request) -> StudyCreated:
        """Upload DICOM files, a zip of a series, or one PNG/JPEG/TIFF. The study is checked, de-identified and
        stored under its content id; the raw upload is deleted whatever happens."""
        with studies.scratch() as scratch:
            upload = Upload(scratch / "parts", max_upload, settings.max_upload_files)
            upload.folder.mkdir()
            try:
                parser = upload.parser(request.headers.get("content-type", ""))
                async for chunk in request.stream():
                    upload.feed(parser, chunk)
                parser.finalize()
            except UploadError as exc:
                raise _Problem(exc.status, exc.problem, exc.remedy) from None
            except MultipartParseError as exc:
                raise _Problem(
                    400, f"the multipart body is malformed ({exc})", "Send a well-formed form upload"
                ) from None
            finally:
                upload.close()
            options = vesalius.deps.ingest_options()
            modality = upload.fields.get("modality") or None
            if modality:
                options = replace(options, modality=coded.user_modality(modality))
            study_id, summary = await asyncio.to_thread(studies.add, upload.files, scratch, options)
        return StudyCreated(study_id=study_id, summary=summary)

    def source(study_id: str) -> tuple[Path, str | None]:
        found = studies.source(study_id)
        if found is None:
            raise _Problem(404, f"there is no study {study_id[:40]!r}", "Upload it with POST /api/studies")
        return found

    def loaded(study_id: str) -> Study:
        return vesalius.deps.study(*source(study_id))

    @app.get("/api/studies/{study_id}", dependencies=guarded)
    def get_study(study_id: str) -> StudyCreated:
        summary = loaded(study_id).summary
        return StudyCreated(study_id=study_id, summary=summary.model_copy(update={"study_id": study_id}))

    @app.delete("/api/studies/{study_id}", status_code=204, dependencies=guarded)
    def delete_study(study_id: str) -> Response:
        """Delete the study, its renders and heatmaps. Threads about it stay, and say the study is gone."""
        vesalius.deps.forget(*source(study_id))
        studies.delete(study_id)
        return Response(status_code=204)

    @app.get(
        "/api/studies/{study_id}/images/{index}",
        dependencies=guarded,
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def study_image(study_id: str, index: int, window: str | None = None, max_side: int = 1024) -> Response:
        """Image `index` of the study as PNG, through `window` (a preset name, "auto" or "center,width")."""
        study = loaded(study_id)
        if not 0 <= index < study.summary.frames:
            raise _Problem(404, f"the study has images 0 to {study.summary.frames - 1}", "Ask for one of those")
        if not 16 <= max_side <= 4096:
            raise _Problem(422, "max_side must be 16 to 4096", "Ask for a smaller or larger image")
        view = study.focused(index=index)
        if window and not view.summary.colour:
            view = view.focused(window=parse_window(window) or auto_window(view.values))
        buffer = io.BytesIO()
        view.render(max_side=max_side).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get(
        "/api/studies/{study_id}/heatmaps/{name}",
        dependencies=guarded,
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}},
    )
    def study_heatmap(study_id: str, name: str) -> FileResponse:
        folder = studies.heatmaps(study_id)
        if folder is None:
            raise _Problem(404, f"there is no study {study_id[:40]!r}", "Upload it with POST /api/studies")
        if not _HEATMAP.fullmatch(name) or not (folder / name).is_file():
            raise _Problem(404, f"the study has no heatmap {name[:60]!r}", "Use a heatmap URL from an answer")
        return FileResponse(folder / name, media_type="image/png")

    @app.post("/api/threads", status_code=201, dependencies=guarded)
    def new_thread(body: NewThread) -> ThreadCreated:
        path, modality = source(body.study_id) if body.study_id else (None, None)
        thread_id = vesalius.start_thread(
            path, audience=body.audience, modality=body.modality or modality, series=body.series, window=body.window
        )
        return ThreadCreated(thread_id=thread_id)

    @app.put(
        CONTEXT_PATH,
        dependencies=guarded,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in CONTEXT_MEDIA},
            }
        },
    )
    async def put_context(thread_id: str, request: Request) -> ClinicalContext:
        """Give the thread clinical context for its next questions: a text report or history (text/plain), a FHIR
        R4 DiagnosticReport/Observation or a Bundle of them (application/fhir+json or application/json), or a DICOM
        SR (application/dicom). Returns the context as kept: read, de-identified, bounded."""
        stored(thread_id)
        data = await request.body()
        if not data:
            raise _Problem(400, "the context is empty", "Send the report or history as the request body")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in CONTEXT_MEDIA:
            raise _Problem(
                415, f"a context of type {kind[:60]!r} is not read", f"Send one of: {', '.join(CONTEXT_MEDIA)}"
            )
        text = await asyncio.to_thread(context_from_bytes, data, "the request body")
        return await asyncio.to_thread(vesalius.set_context, thread_id, text)

    @app.get(
        "/api/threads/{thread_id}/export",
        dependencies=guarded,
        response_class=Response,
        responses={200: {"content": {media: {} for media in EXPORT_MEDIA.values()}}},
    )
    def export(thread_id: str, format: ExportFormat = "fhir") -> Response:
        """The findings of the thread's latest answer: a FHIR R4 Bundle, a DICOM SR citing the de-identified study,
        or the findings as JSON."""
        if not stored(thread_id).get("answer"):
            raise _Problem(409, f"conversation {thread_id} has no answer yet", "Ask a question in it first")
        result = vesalius.export(thread_id, format)
        name = f"vesalius-{thread_id}{result.suffix}"
        return Response(
            result.data, media_type=result.media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    def stored(thread_id: str) -> dict:
        values = vesalius.thread(_thread_id(thread_id))
        if not values:
            raise _Problem(404, f"there is no conversation {thread_id[:40]!r}", "Start one with POST /api/threads")
        return values

    @app.get("/api/threads/{thread_id}", dependencies=guarded)
    def get_thread(thread_id: str) -> Thread:
        values = stored(thread_id)
        return Thread(
            thread_id=thread_id,
            study_id=studies.study_id_of(values.get("study_path")),
            audience=values.get("audience"),
            turns=vesalius.history(thread_id),
        )

    @app.delete("/api/threads/{thread_id}", status_code=204, dependencies=guarded)
    def delete_thread(thread_id: str) -> Response:
        if not vesalius.delete_thread(_thread_id(thread_id)):
            raise _Problem(404, f"there is no conversation {thread_id[:40]!r}", "Check the id")
        return Response(status_code=204)

    @app.post(
        "/api/threads/{thread_id}/messages",
        dependencies=guarded,
        response_model=None,
        responses={
            200: {"model": Answer, "content": {"text/event-stream": {}}, "description": "the Answer, or its events"}
        },
    )
    async def ask(thread_id: str, body: Message, request: Request) -> Any:
        """Ask a question on the thread. With `Accept: text/event-stream`: `progress` events (each step as it
        finishes), `token` events (the model's text as it is generated, when a model server is configured), then
        one `answer` event (the Answer JSON) or one `error` event; otherwise the Answer JSON."""
        values = stored(thread_id)
        study_id = studies.study_id_of(values.get("study_path"))
        heatmaps = studies.heatmaps(study_id) if study_id else None
        if values.get("study_path") and (study_id is None or heatmaps is None):
            raise _Problem(
                410, "the study of this conversation was deleted", "Upload the study again and start a new thread"
            )

        new_study, modality = source(body.study_id) if body.study_id else (None, None)
        if body.study_id:
            study_id, heatmaps = body.study_id, studies.heatmaps(body.study_id)

        def run(
            on_step: Callable[[str], None] | None = None, on_token: Callable[[str], None] | None = None
        ) -> dict[str, Any]:
            answer = vesalius.ask(
                body.question,
                study=new_study,
                modality=modality,
                thread_id=thread_id,
                heatmap_dir=heatmaps,
                on_step=on_step,
                on_token=on_token,
                context=body.context,
            )
            return _public(answer, study_id)

        if "text/event-stream" not in request.headers.get("accept", ""):
            return JSONResponse(await asyncio.to_thread(run))
        return StreamingResponse(_events(run), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    app.mount("/", StaticFiles(directory=str(resources.files("vesalius.server") / "web"), html=True), name="web")
    return app


class _Problem(Exception):
    def __init__(self, status: int, problem: str, remedy: str, headers: dict[str, str] | None = None):
        super().__init__(problem)
        self.status, self.problem, self.remedy, self.headers = status, problem, remedy, headers


async def _events(run: Callable[..., dict[str, Any]]) -> AsyncIterator[str]:
    """Server-sent events from a turn running on a worker thread. A client that goes away does not stop the
    turn: it finishes and is stored whole, as any other."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def step(node: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("progress", {"step": node}))

    def token(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("token", {"text": text}))

    async def turn() -> None:
        try:
            queue.put_nowait(("answer", await asyncio.to_thread(run, step, token)))
        except VesaliusError as exc:
            queue.put_nowait(("error", {"error": " ".join(exc.problem.split()), "hint": exc.remedy}))
        except Exception as exc:  # noqa: BLE001 - the stream must end with an event, whatever failed
            request_id = uuid.uuid4().hex[:12]
            log.error("request %s failed: %s", request_id, type(exc).__name__)
            queue.put_nowait(("error", {"error": f"the server failed on this question (id {request_id})", "hint": ""}))

    task = asyncio.create_task(turn())
    yield 'event: progress\ndata: {"step": "start"}\n\n'
    while True:
        event, data = await queue.get()
        yield f"event: {event}\ndata: {json.dumps(data)}\n\n"
        if event in ("answer", "error"):
            break
    await task


def _thread_id(thread_id: str) -> str:
    if not THREAD_ID.fullmatch(thread_id):
        raise _Problem(404, f"there is no conversation {thread_id[:40]!r}", "Check the id")
    return thread_id


def _public(answer: Answer, study_id: str | None) -> dict[str, Any]:
    """The Answer as JSON, with heatmap files named by their URL (a server's folders are nobody else's business)."""
    data = answer.model_dump(mode="json")
    if data["study"] is not None:  # None: a conversation about medicine, with no study
        data["study"]["study_id"] = study_id
    for tool in data.get("tools") or []:
        if tool.get("heatmap_path"):
            tool["heatmap_path"] = f"/api/studies/{study_id}/heatmaps/{Path(tool['heatmap_path']).name}"
    return data
