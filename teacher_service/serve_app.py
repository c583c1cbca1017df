"""The teacher on Ray Serve: one deployment whose requests are batched with `@serve.batch`, behind a
FastAPI ingress with `POST /diagnose` (a `DiagnosisRequest` as JSON in, a `Diagnosis` out) and
`GET /healthz`; the same deployment answers `handle.diagnose.remote(request)` calls.

Guarding the endpoint, before any model runs: a bearer token when one is configured (checked before the
body is read), a body size limit (413), a per-image size limit (413), and every validation error turned
into a 400/422 whose message names the offending field. A request whose scene cannot be diagnosed
(degenerate geometry that validates) is answered 422 and counted, not 500. A request that outlives
`request_timeout_s` inside the replica gets 504.

Placement: a replica takes `num_cpus`/`num_gpus_per_replica` and, when the caller passes one (the controller
does, from `cluster.bundle_resources.teacher`), a custom node resource that keeps it on the teacher nodes.

Metrics (ray.util.metrics; Prometheus names get Ray's `ray_` prefix and counters a `_total` suffix):
elfvla_teacher_latency_seconds,
elfvla_teacher_batch_size, elfvla_teacher_requests, elfvla_teacher_fallbacks, elfvla_teacher_errors.
"""

# No `from __future__ import annotations` here: FastAPI reads the route annotations at run time, and Serve's
# method wrappers do not carry this module's globals for resolving string annotations.
import asyncio
import base64
import binascii
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any

from teacher_service.config import TeacherConfig, TeacherServeConfig
from teacher_service.schema import Diagnosis, DiagnosisRequest

logger = logging.getLogger(__name__)
LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]  # [s]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128]


class DiagnosisFailed(Exception):
    """The teacher could not diagnose a (valid) request."""


def _field(loc: tuple | list) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union", "json-or-python")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(body)"


def _messages(errors: list[dict]) -> list[str]:
    out = []
    for e in errors:
        loc, msg = e.get("loc", ()), str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "json_invalid":
            out.append(f"body: malformed JSON near character {loc[-1] if loc else 0}: {msg}")
        else:
            out.append(f"{_field(loc)}: {msg}")
    return out


class _Guard:
    """ASGI middleware: bearer token, then the body size limit (Content-Length or counted while read)."""

    def __init__(self, app: Any, token: str | None, max_bytes: int) -> None:
        self.app, self.token, self.max_bytes = app, token, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/diagnose"):
            return await self.app(scope, receive, send)
        from starlette.responses import JSONResponse

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                response = JSONResponse(
                    {"detail": "authorization: missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                return await response(scope, receive, send)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            detail = f"body: larger than the limit of {self.max_bytes} bytes"
            return await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            detail = f"body: larger than the limit of {self.max_bytes} bytes"
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    pass


def build_app(  # noqa: ANN201 - a Serve Application
    config: TeacherConfig, node_resources: Mapping[str, float] | None = None
):
    """The bound Serve application for `config` (deploy it with `serve.run`); `node_resources`: see
    `deployment_options`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from ray import serve

    s = config.serve
    api = FastAPI(
        title="ELF-VLA teacher", version="1", description="5-part failure diagnosis of driving plans."
    )
    api.add_middleware(_Guard, token=s.token, max_bytes=s.max_request_bytes)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        malformed = any(e.get("type") == "json_invalid" for e in errors)
        return JSONResponse({"detail": _messages(errors)}, status_code=400 if malformed else 422)

    @serve.deployment(name="TeacherDeployment")
    @serve.ingress(api)
    class TeacherDeployment:
        def __init__(self, config: TeacherConfig) -> None:
            from ray.util import metrics

            from teacher_service.teachers import make_teacher

            self.config = config
            self.teacher = make_teacher(config.backend)
            self._batched.set_max_batch_size(config.serve.max_batch_size)
            self._batched.set_batch_wait_timeout_s(config.serve.batch_wait_timeout_s)
            self.latency = metrics.Histogram(
                "elfvla_teacher_latency_seconds", "Diagnosis latency per request [s]", LATENCY_BOUNDARIES
            )
            self.batch_size = metrics.Histogram(
                "elfvla_teacher_batch_size", "Requests per teacher batch", BATCH_BOUNDARIES
            )
            self.requests = metrics.Counter("elfvla_teacher_requests", "Diagnosis requests answered")
            self.fallbacks = metrics.Counter(
                "elfvla_teacher_fallbacks", "Diagnoses replaced by the analytic teacher", tag_keys=("reason",)
            )
            self.errors = metrics.Counter(
                "elfvla_teacher_errors", "Requests refused or failed", tag_keys=("kind",)
            )

        @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
        async def _batched(self, requests: list[DiagnosisRequest]) -> list[Diagnosis | Exception]:
            self.batch_size.observe(len(requests))
            before = self.teacher.stats.fallbacks
            try:
                results: list[Diagnosis | Exception] = list(
                    await asyncio.to_thread(self.teacher.diagnose, requests)
                )
            except Exception:  # isolate the request that broke the batch
                results = [await asyncio.to_thread(self._one, r) for r in requests]
            added = self.teacher.stats.fallbacks - before
            if added:
                self.fallbacks.inc(added, tags={"reason": "invalid_output"})
            return results

        def _one(self, request: DiagnosisRequest) -> Diagnosis | Exception:
            try:
                return self.teacher.diagnose([request])[0]
            except Exception as err:
                logger.exception("teacher failed on scene %s", request.scene_id)
                return DiagnosisFailed(f"{type(err).__name__}: {err}")

        async def diagnose(self, request: DiagnosisRequest) -> Diagnosis:
            """One diagnosis (the handle transport calls this); raises TimeoutError or DiagnosisFailed."""
            start = time.perf_counter()
            try:
                result = await asyncio.wait_for(self._batched(request), self.config.serve.request_timeout_s)
            except TimeoutError:
                self.errors.inc(tags={"kind": "timeout"})
                raise
            if isinstance(result, Exception):
                self.errors.inc(tags={"kind": "diagnosis_failed"})
                raise result
            self.requests.inc()
            self.latency.observe(time.perf_counter() - start)
            return result

        @api.post(
            "/diagnose", response_model=Diagnosis, responses={400: {}, 401: {}, 413: {}, 422: {}, 504: {}}
        )
        async def http_diagnose(self, body: DiagnosisRequest) -> Any:
            too_big = _oversized_image(body, self.config.serve.max_image_bytes)
            if too_big is not None:
                self.errors.inc(tags={"kind": "too_large"})
                return JSONResponse({"detail": [too_big]}, status_code=413 if "larger" in too_big else 422)
            try:
                diagnosis = await self.diagnose(body)
            except TimeoutError:
                return JSONResponse({"detail": "request timed out in the teacher"}, status_code=504)
            except DiagnosisFailed as err:
                return JSONResponse({"detail": [f"scene: cannot be diagnosed: {err}"]}, status_code=422)
            return JSONResponse(diagnosis.model_dump(mode="json"))

        @api.get("/healthz")
        async def healthz(self) -> dict:
            return {"status": "ok", "teacher": self.teacher.kind}

    return TeacherDeployment.options(**deployment_options(s, node_resources)).bind(config)


def deployment_options(
    serve: TeacherServeConfig, node_resources: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The Serve deployment options of the teacher: replicas (fixed or autoscaled), admission, and each
    replica's Ray actor options; `node_resources` (custom resource -> units per replica) pin the replicas
    to the nodes that advertise them (the controller passes `cluster.bundle_resources.teacher`)."""
    actor: dict[str, Any] = {"num_cpus": serve.num_cpus_per_replica, "num_gpus": serve.num_gpus_per_replica}
    if node_resources:
        actor["resources"] = dict(node_resources)
    options: dict[str, Any] = {"max_ongoing_requests": serve.max_ongoing_requests, "ray_actor_options": actor}
    if serve.autoscaling is not None:
        options["autoscaling_config"] = {
            "min_replicas": serve.autoscaling.min_replicas,
            "max_replicas": serve.autoscaling.max_replicas,
            "target_ongoing_requests": serve.autoscaling.target_ongoing_requests,
        }
    else:
        options["num_replicas"] = serve.replicas
    return options


def _oversized_image(request: DiagnosisRequest, limit: int) -> str | None:
    """A message naming the first image that is not base64 or decodes to more than `limit` bytes."""
    for name, data in (request.images or {}).items():
        if len(data) * 3 // 4 > limit + 3:
            return f"images.{name}: larger than the limit of {limit} bytes"
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return f"images.{name}: not valid base64"
    return None


def serve_teacher(  # noqa: ANN201 - a deployment handle
    config: TeacherConfig,
    route_prefix: str = "/",
    app_name: str | None = None,
    node_resources: Mapping[str, float] | None = None,
):
    """Deploy the teacher on the running Ray (start it with cluster.ray_runtime.start_ray) and return the
    deployment handle. The HTTP proxy binds config.serve.host:port; `node_resources`: see
    `deployment_options`."""
    from ray import serve

    serve.start(http_options={"host": config.serve.host, "port": config.serve.port})
    app = build_app(config, node_resources)
    return serve.run(app, name=app_name or config.serve.app_name, route_prefix=route_prefix, blocking=False)
