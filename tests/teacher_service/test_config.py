"""The teacher's config section and the `serve-teacher` command's argument handling (no Ray needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from cluster.commands import serve_teacher
from teacher_service.config import AnalyticTeacherConfig, TeacherConfig, VLMTeacherConfig


def test_backend_is_a_discriminated_union():
    assert isinstance(TeacherConfig().backend, AnalyticTeacherConfig)
    vlm = TeacherConfig.model_validate(
        {"backend": {"type": "vlm", "engine": "transformers", "model_path": "/m"}}
    )
    assert isinstance(vlm.backend, VLMTeacherConfig) and vlm.backend.model_path == Path("/m")
    with pytest.raises(ValidationError, match="backend.vlm.model_path"):
        TeacherConfig.model_validate({"backend": {"type": "vlm"}})
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        TeacherConfig.model_validate({"backend": {"type": "oracle"}})


def test_serve_settings():
    serve = TeacherConfig.model_validate({"serve": {"max_batch_size": 32}}).serve
    assert serve.max_ongoing_requests >= 32  # or @serve.batch caps batches below max_batch_size
    with pytest.raises(ValidationError, match="min_replicas"):
        TeacherConfig.model_validate({"serve": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}})


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_teacher.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_serve_teacher_refuses_bad_configs_before_starting_anything(tmp_path, capsys):
    assert serve_teacher.NAME == "serve-teacher" and serve_teacher.HELP
    assert serve_teacher.run(_args("teacher.serve.host=0.0.0.0")) == 2
    assert "not loopback" in capsys.readouterr().err
    assert serve_teacher.run(_args("teacher.serve.prot=1")) == 2
    assert "did you mean teacher.serve.port" in capsys.readouterr().err
    assert serve_teacher.run(_args("cluster.bundle_resources={driver: x}")) == 2  # it reads the pin too
    assert "cluster.bundle_resources.driver" in capsys.readouterr().err
    yaml_file = tmp_path / "exp.yaml"
    yaml_file.write_text("run: {name: x}\nteacher:\n  backend: {type: coarse}\n  serve: {port: 0}\n")
    assert serve_teacher.run(_args("--config", str(yaml_file))) == 2
    assert "teacher.serve.port" in capsys.readouterr().err
