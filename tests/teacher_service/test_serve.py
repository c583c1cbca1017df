"""The teacher on a real local Ray Serve (one app for the module): HTTP and handle transports, request
guarding (4xx naming the field, never 5xx), client fallbacks, and a bounded schemathesis run."""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request

import pytest
from pydantic import ValidationError

from teacher_service.analytic import AnalyticTeacher
from teacher_service.client import (
    HandleTransport,
    HttpTransport,
    TeacherClient,
    TeacherRequestError,
    make_teacher_client,
)
from teacher_service.config import TeacherConfig, TeacherServeConfig
from tests.teacher_service.conftest import long_tail_request

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(local_ray):
    from ray import serve

    from teacher_service.serve_app import serve_teacher

    config = TeacherConfig.model_validate(
        {
            "serve": {
                "port": _free_port(), "token": TOKEN, "num_cpus_per_replica": 0.5, "max_batch_size": 4,
                "max_request_bytes": 64 * 1024, "max_image_bytes": 1024, "request_timeout_s": 60,
            },
            "client": {"transport": "http", "timeout_s": 60},
        }
    )  # fmt: skip
    handle = serve_teacher(config)
    yield config, handle, f"http://127.0.0.1:{config.serve.port}"
    serve.shutdown()


@pytest.fixture(scope="module")
def requests_():
    return [long_tail_request("stalled_vehicle", 11)[1], long_tail_request("pedestrian_crossing", 12)[1]]


def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, object]:
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_healthz(app):
    _, _, base = app
    with urllib.request.urlopen(f"{base}/healthz", timeout=30) as resp:
        assert json.loads(resp.read()) == {"status": "ok", "teacher": "analytic"}


def test_http_and_handle_answer_like_the_local_teacher(app, requests_):
    config, handle, _ = app
    local = AnalyticTeacher().diagnose(requests_)
    over_http = make_teacher_client(config).diagnose(requests_ * 3)  # 6 concurrent requests, batched
    via_handle = TeacherClient(HandleTransport(handle), timeout_s=60).diagnose(requests_)
    assert over_http == local * 3
    assert via_handle == local


def _body(request, **changes) -> bytes:
    data = json.loads(request.model_dump_json(exclude_none=True))
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def test_bad_requests_get_4xx_naming_the_field(app, requests_):
    _, _, base = app
    url, good = f"{base}/diagnose", requests_[0]
    scene = json.loads(good.scene.model_dump_json(exclude_unset=True))
    bad_scene = {**scene, "map": {**scene["map"], "route_roadblock_ids": ["nowhere"]}}
    png = base64.b64encode(b"\x89PNG" + b"0" * 2000).decode()
    cases = [
        (b'{"scene_id": "x", ', {}, 400, "body: malformed JSON"),
        (_body(good, plan=None, breakdown=None), {}, 422, "plan: Field required"),
        (_body(good, plan=[[1.0, 2.0]] * 8), {}, 422, "plan: pose 0 has 2 values"),
        (_body(good, plan=[[1.0, 2.0, 0.0]] * 7), {}, 422, "plan: List should have at least 8 items"),
        (_body(good, scene=bad_scene), {}, 422, "map.route_roadblock_ids"),
        (_body(good, think="x" * 5000), {}, 422, "think:"),
        (_body(good, images={"front": png}), {}, 413, "images.front: larger than the limit"),
        (_body(good, images={"front": "***"}), {}, 422, "images.front: not valid base64"),
        (b'{"pad": "' + b"x" * 70000 + b'"}', {}, 413, "body: larger than the limit"),
    ]
    for body, headers, status, needle in cases:
        code, answer = _post(url, body, {**AUTH, **headers})
        assert code == status, (needle, answer)
        assert needle in json.dumps(answer), (needle, answer)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        code, answer = _post(url, _body(good), headers)
        assert code == 401 and "authorization" in answer["detail"]


def test_client_falls_back_to_the_analytic_teacher_and_counts(app, requests_):
    _, handle, base = app
    local = AnalyticTeacher().diagnose(requests_)
    dead = TeacherClient(HttpTransport(f"http://127.0.0.1:{_free_port()}/diagnose", TOKEN), timeout_s=5)
    assert dead.diagnose(requests_) == local and dead.stats.fallbacks == 2
    hurried = TeacherClient(HandleTransport(handle), timeout_s=1e-4)
    assert hurried.diagnose(requests_) == local and hurried.stats.fallbacks == 2
    wrong_token = TeacherClient(HttpTransport(f"{base}/diagnose", "wrong"), timeout_s=30)
    with pytest.raises(TeacherRequestError, match="401"):
        wrong_token.diagnose(requests_[:1])


def test_deployment_options_pin_replicas_to_their_node_resource():
    from teacher_service.serve_app import build_app, deployment_options

    serve = TeacherServeConfig(replicas=8, num_cpus_per_replica=8, num_gpus_per_replica=2)
    pinned = deployment_options(serve, {"elfvla_teacher": 2.0})
    assert pinned["num_replicas"] == 8
    assert pinned["ray_actor_options"] == {"num_cpus": 8, "num_gpus": 2, "resources": {"elfvla_teacher": 2.0}}
    assert "resources" not in deployment_options(serve)["ray_actor_options"]  # unpinned: anywhere it fits
    app = build_app(TeacherConfig(serve=serve), {"elfvla_teacher": 2.0})  # Serve accepts the options
    assert app._bound_deployment.ray_actor_options["resources"] == {"elfvla_teacher": 2.0}


def test_binding_off_loopback_needs_a_token():
    with pytest.raises(ValidationError, match="not loopback"):
        TeacherServeConfig(host="0.0.0.0")
    assert TeacherServeConfig(host="0.0.0.0", token="t").token == "t"
    assert TeacherServeConfig().host == "127.0.0.1"


def test_schemathesis_finds_no_server_errors(app):
    """Generated requests (valid by the OpenAPI schema, and deliberately invalid) never get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation.modes import GenerationMode

    _, _, base = app
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    runs = [
        ("/diagnose", "POST", GenerationMode.POSITIVE),
        ("/diagnose", "POST", GenerationMode.NEGATIVE),
        ("/healthz", "GET", GenerationMode.POSITIVE),  # no inputs, so nothing to make invalid
    ]
    statuses: list[int] = []
    for path, method, mode in runs:

        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=schema[path][method].as_strategy(generation_mode=mode))
        def check(case):
            response = case.call(base_url=base, headers=AUTH, timeout=60)
            statuses.append(response.status_code)
            assert response.status_code < 500, (
                case.path,
                case.method,
                response.status_code,
                response.text[:300],
            )

        check()
    print("schemathesis statuses:", sorted(statuses))
    assert {400, 422} & set(statuses) and 200 in statuses
