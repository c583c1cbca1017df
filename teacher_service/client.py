"""The one way the controller talks to the teacher: `TeacherClient.diagnose(requests)`, over a Serve
deployment handle or HTTP, with a deadline per call. Requests that are not answered in time (or whose
transport fails: connection refused, 5xx, a dead replica) are diagnosed in-process by the analytic
teacher, and counted; a 4xx is the caller's bug and raises `TeacherRequestError`.

`make_teacher_client(config)` gives the client the config asks for; transport `local` is the teacher
itself, in-process, with the same interface.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from teacher_service.config import TeacherConfig
from teacher_service.schema import Diagnosis, DiagnosisRequest, TeacherKind
from teacher_service.teachers import Teacher, TeacherStats, make_teacher


class TeacherRequestError(ValueError):
    """The service refused a request as invalid (4xx); `status` and `detail` say why."""

    def __init__(self, status: int, detail: object) -> None:
        self.status, self.detail = status, detail
        super().__init__(f"teacher refused the request ({status}): {detail}")


class Transport(Protocol):
    def send(self, requests: list[DiagnosisRequest], timeout_s: float) -> list[Diagnosis | Exception]: ...


class HandleTransport:
    """Calls `TeacherDeployment.diagnose` through a Serve deployment handle."""

    def __init__(self, handle) -> None:  # noqa: ANN001 - ray.serve.handle.DeploymentHandle
        self.handle = handle

    def send(self, requests: list[DiagnosisRequest], timeout_s: float) -> list[Diagnosis | Exception]:
        deadline = time.monotonic() + timeout_s
        responses = [self.handle.diagnose.remote(r) for r in requests]
        out: list[Diagnosis | Exception] = []
        for response in responses:
            try:
                out.append(response.result(timeout_s=max(deadline - time.monotonic(), 0.001)))
            except Exception as err:  # timeout, dead replica, a teacher error: all fall back
                response.cancel()
                out.append(err)
        return out


class HttpTransport:
    """POSTs each request to `url` (…/diagnose), `concurrency` at a time."""

    def __init__(self, url: str, token: str | None = None, concurrency: int = 16) -> None:
        self.url, self.token, self.concurrency = url, token, concurrency

    def post(self, request: DiagnosisRequest, deadline: float) -> Diagnosis | Exception:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = request.model_dump_json(exclude_none=True).encode()
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=max(deadline - time.monotonic(), 0.001)) as resp:
                return Diagnosis.model_validate_json(resp.read())
        except urllib.error.HTTPError as err:
            if 400 <= err.code < 500:
                return TeacherRequestError(err.code, _detail(err))
            return err
        except Exception as err:  # timeout, connection refused, a malformed answer
            return err

    def send(self, requests: list[DiagnosisRequest], timeout_s: float) -> list[Diagnosis | Exception]:
        deadline = time.monotonic() + timeout_s
        if len(requests) == 1:
            return [self.post(requests[0], deadline)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self.post(r, deadline), requests))


def _detail(err: urllib.error.HTTPError) -> object:
    try:
        return json.loads(err.read()).get("detail")
    except Exception:
        return err.reason


@dataclass
class ClientStats(TeacherStats):
    timeouts: int = 0  # requests not answered in time or whose transport failed


class TeacherClient:
    """A `Teacher` backed by a remote one; unanswered requests fall back to a local analytic teacher."""

    def __init__(
        self,
        transport: Transport,
        timeout_s: float,
        kind: TeacherKind = "analytic",
        fallback: Teacher | None = None,
    ) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.kind = kind
        self._fallback = fallback
        self.stats = ClientStats()
        self._counter = None

    def diagnose(self, requests: list[DiagnosisRequest]) -> list[Diagnosis]:
        self.stats.requests += len(requests)
        answers = self.transport.send(requests, self.timeout_s)
        refused = next((a for a in answers if isinstance(a, TeacherRequestError)), None)
        if refused is not None:
            raise refused
        missing = [i for i, a in enumerate(answers) if not isinstance(a, Diagnosis)]
        if missing:
            self._count_fallbacks(len(missing))
            local = self.fallback.diagnose([requests[i] for i in missing])
            for i, diagnosis in zip(missing, local, strict=True):
                answers[i] = diagnosis
        return [a for a in answers if isinstance(a, Diagnosis)]

    @property
    def fallback(self) -> Teacher:
        if self._fallback is None:
            from teacher_service.analytic import AnalyticTeacher

            self._fallback = AnalyticTeacher()
        return self._fallback

    def _count_fallbacks(self, n: int) -> None:
        self.stats.timeouts += n
        self.stats.fallbacks += n
        import ray

        if ray.is_initialized():
            from ray.util import metrics

            if self._counter is None:
                self._counter = metrics.Counter(
                    "elfvla_teacher_client_fallbacks",
                    "Teacher requests answered by the local analytic fallback",
                )
            self._counter.inc(n)


def make_teacher_client(config: TeacherConfig) -> Teacher:
    """The teacher as the controller should call it: in-process (`local`), or the Serve app."""
    transport = config.client.transport
    if transport == "local":
        return make_teacher(config.backend)
    if transport == "handle":
        from ray import serve

        handle = serve.get_deployment_handle("TeacherDeployment", app_name=config.serve.app_name)
        return TeacherClient(HandleTransport(handle), config.client.timeout_s, config.backend.type)
    host = "127.0.0.1" if config.serve.host in ("0.0.0.0", "::") else config.serve.host
    url = f"http://{host}:{config.serve.port}/diagnose"
    http = HttpTransport(url, config.serve.token, config.client.concurrency)
    return TeacherClient(http, config.client.timeout_s, config.backend.type)
