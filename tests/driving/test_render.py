"""Camera and BEV renderers: objects land where an independent pinhole computation says, nothing behind the
camera is drawn, renders are deterministic, lights change the image, and show-scene writes a PNG."""

from __future__ import annotations

import argparse
import io
import math

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box

from cluster.commands import show_scene
from driving.bev import render_bev, show_scene_image
from driving.camera import TINY_CAMERA, CameraConfig, render_camera
from driving.geometry import local_to_global
from driving.render_common import EGO_COLOUR, LIGHT_COLOURS, TYPE_COLOURS, agent_colour, map_view
from driving.scene import Scene, dumps_scene, scene_from_dict

EGO_POSE = np.array([100.0, -20.0, 0.7])  # a non-trivial global pose, so frame errors show up
CAM = CameraConfig(width=224, height=224, fov_deg=70.0, mount_height=1.6, pitch_deg=8.0, forward_offset=1.5)


def _global(x: float, y: float, heading: float = 0.0) -> list[float]:
    return local_to_global(np.array([x, y, heading]), EGO_POSE).tolist()


def _agent(agent_id: str, agent_type: str, x: float, y: float, length: float, width: float, **extra) -> dict:
    gx, gy, gh = _global(x, y)
    return {"id": agent_id, "type": agent_type, "length": length, "width": width, "x": gx, "y": gy,
            "heading": gh, "vx": 0.0, "vy": 0.0, **extra}  # fmt: skip


def _scene(agents: list[dict] = (), red: bool | None = None, stop_at: float = 15.0) -> Scene:
    """A straight lane through the ego; with `red` set, it ends `stop_at` m ahead in a signalled connector."""
    end = stop_at if red is not None else 120.0
    lane = {"id": "lane", "centerline": [_global(-60, 0)[:2], _global(end, 0)[:2]], "width": 3.5}
    data: dict = {
        "ego": {
            "x": EGO_POSE[0],
            "y": EGO_POSE[1],
            "heading": EGO_POSE[2],
            "vx": 5.0,
            "vy": 0,
            "ax": 0,
            "ay": 0,
        },
        "map": {"roadblocks": [{"id": "rb", "lanes": [lane]}], "route_roadblock_ids": ["rb"]},
        "agents": list(agents),
        "id": "test_scene",
    }
    if red is not None:
        conn = {
            "id": "conn_lane",
            "centerline": [_global(end, 0)[:2], _global(end + 25, 0)[:2]],
            "width": 3.5,
        }
        data["map"]["roadblock_connectors"] = [{"id": "conn", "lanes": [conn]}]
        data["traffic_lights"] = [{"lane_connector_id": "conn_lane", "red": red}]
    return scene_from_dict(data)


def _pinhole(cfg: CameraConfig, point: tuple[float, float, float]) -> tuple[float, float, float]:
    """Independent projection of a local (x fwd, y left, z up) point: (u, v) pixels and depth."""
    p = math.radians(cfg.pitch_deg)
    dx, dy, dz = point[0] - cfg.forward_offset, point[1], point[2] - cfg.mount_height
    right, down, depth = -dy, -math.sin(p) * dx - math.cos(p) * dz, math.cos(p) * dx - math.sin(p) * dz
    f = cfg.width / 2 / math.tan(math.radians(cfg.fov_deg) / 2)
    return cfg.width / 2 + f * right / depth, cfg.height / 2 + f * down / depth, depth


def _rgb(img: Image.Image, u: float, v: float) -> np.ndarray:
    return np.asarray(img)[int(v), int(u)].astype(int)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# -------------------------------------------------------------------------------------- camera ---


def test_box_ahead_lands_on_its_pinhole_pixel():
    # a tall, wide generic object whose rear face is 20 m ahead of the rear axle, on the ego's axis
    wall = _agent("wall", "generic_object", 20.5, 0.0, 1.0, 4.0, height=10.0)
    img = render_camera(_scene([wall]), CAM)
    empty = np.asarray(render_camera(_scene(), CAM)).astype(int)
    u, v, depth = _pinhole(CAM, (20.0, 0.0, 5.0))
    assert depth > 0 and u == pytest.approx(CAM.width / 2)
    colour = _rgb(img, u, v)
    base = np.array(TYPE_COLOURS["generic_object"])
    assert np.allclose(colour / base, (colour / base).mean(), atol=0.02), f"{colour} is not a shade of {base}"
    assert not np.array_equal(colour, empty[int(v), int(u)])
    # its left and right edges (y = ±2 m) land where the pinhole says, symmetric about the centre
    u_left, _, _ = _pinhole(CAM, (20.0, 2.0, 5.0))
    u_right, _, _ = _pinhole(CAM, (20.0, -2.0, 5.0))
    changed = np.flatnonzero(np.any(np.asarray(img).astype(int)[int(v)] != empty[int(v)], axis=1))
    assert abs(changed.min() - u_left) <= 1.0 and abs(changed.max() + 1 - u_right) <= 1.0
    assert abs((changed.min() + changed.max() + 1) / 2 - CAM.width / 2) <= 0.5


def test_objects_behind_the_camera_are_not_drawn():
    behind = [
        _agent("truck_behind", "vehicle", -8.0, 0.0, 12.0, 2.5, height=4.0),
        _agent("wall_behind", "barrier", -3.0, 3.0, 2.0, 6.0, height=8.0),
    ]
    assert _png(render_camera(_scene(behind), CAM)) == _png(render_camera(_scene(), CAM))


def test_ground_behind_the_camera_does_not_wrap_into_the_sky():
    # the lane runs from 60 m behind to 120 m ahead; with no near-plane clipping, its vertices behind the
    # camera project above the horizon, mirrored
    img = np.asarray(render_camera(_scene(), CAM)).astype(int)
    _, horizon, _ = _pinhole(CAM, (1e6, 0.0, 0.0))
    sky = img[: int(horizon) - 1]
    assert sky.shape[0] > 10
    assert (sky[..., 2] > sky[..., 0] + 40).all(), "every pixel above the horizon should be sky blue"


def test_render_is_deterministic():
    agents = [_agent(f"car{i}", "vehicle", 8.0 + 6 * i, (-1) ** i * 3.0, 4.5, 2.0) for i in range(6)]
    agents.append(_agent("ped", "pedestrian", 12.0, -4.0, 0.6, 0.6))
    scene = _scene(agents, red=True)
    for cfg in (CAM, TINY_CAMERA):
        assert _png(render_camera(scene, cfg)) == _png(render_camera(scene, cfg))


def test_image_size_follows_config():
    scene = _scene()
    assert render_camera(scene, CameraConfig(width=96, height=48, supersample=3)).size == (96, 48)
    tiny = render_camera(scene, TINY_CAMERA)
    assert tiny.size == (64, 64) and tiny.mode == "RGB"


def test_presets_fill_only_fields_not_given():
    assert CameraConfig.model_validate({"preset": "tiny"}) == TINY_CAMERA
    assert TINY_CAMERA.mount_height == pytest.approx(4.5) and TINY_CAMERA.width == 64
    cfg = CameraConfig.model_validate({"preset": "tiny", "width": 96})
    assert cfg.width == 96 and cfg.height == 64 and cfg.mount_height == pytest.approx(4.5)
    with pytest.raises(ValueError):
        CameraConfig.model_validate({"widht": 64})
    # the tiny camera's horizon sits in the top fifth of the image
    _, horizon, _ = _pinhole(TINY_CAMERA, (1e6, 0.0, 0.0))
    assert 0 < horizon < TINY_CAMERA.height / 5


def test_red_and_green_lights_colour_the_lamp():
    # the lamp hangs over the connector's start (15 m ahead), 3-4 m up; its rear face is 0.3 m before it
    u, v, _ = _pinhole(CAM, (14.7, 0.0, 3.5))
    red = _rgb(render_camera(_scene(red=True), CAM), u, v)
    green = _rgb(render_camera(_scene(red=False), CAM), u, v)
    assert red[0] > 180 and red[1] < 80, red
    assert green[1] > 180 and green[0] < 80, green
    assert np.argmax(LIGHT_COLOURS[True]) == 0 and np.argmax(LIGHT_COLOURS[False]) == 1


def _lead(speed_after_half_second: float) -> dict:
    """A car 12 m ahead at 8 m/s whose speed 0.5 s later is given (two frames of states)."""
    frames = []
    for t, v in ((0.0, 8.0), (0.5, speed_after_half_second)):
        x, y, h = _global(12.0 + 8.0 * t, 0.0)
        frames.append([x, y, h, v * math.cos(h), v * math.sin(h)])
    return {"id": "lead", "type": "vehicle", "length": 4.5, "width": 1.9, "height": 1.6, "states": frames}


def test_a_braking_vehicle_shows_a_lit_red_band_across_its_rear():
    braking, cruising = (scene_from_dict({**_scene().model_dump(), "agents": [_lead(v)]}) for v in (7.0, 7.8))
    assert braking.agents[0].braking and not cruising.agents[0].braking  # 2.0 vs 0.4 m/s2
    u, v, _ = _pinhole(CAM, (12.0 - 2.25, 0.0, 0.4 * 1.6))  # the middle of the rear face, band height
    lit, plain = _rgb(render_camera(braking, CAM), u, v), _rgb(render_camera(cruising, CAM), u, v)
    assert lit[0] > 200 and lit[1] < 80 and lit[2] < 80, lit
    assert not (plain[0] > 200 and plain[1] < 80), plain
    # the student's ground-truth think says what the image shows
    from actors.response import scene_think
    from driving.scene import MetaAction

    meta = MetaAction(lateral="keep_lane", longitudinal="decelerate")
    assert "vehicle 12 m ahead faster braking;" in scene_think(braking, meta)  # the ego drives at 5 m/s
    assert "braking" not in scene_think(cruising, meta)


def test_plans_are_drawn_on_the_camera_image():
    scene = _scene()
    plan = np.array([[2.5 * (i + 1), 0.0, 0.0] for i in range(8)])
    plain = np.asarray(render_camera(scene, CAM)).astype(int)
    with_plan = np.asarray(render_camera(scene, CAM, plans={"plan": plan})).astype(int)
    u, v, _ = _pinhole(CAM, (10.0, 0.0, 0.05))  # the fourth pose's dot
    assert not np.array_equal(plain[int(v), int(u)], with_plan[int(v), int(u)])


def test_lane_markings_follow_the_lane_layout():
    # two lanes east (y = 0, 3.5) and one lane west (y = -3.5), as in the shared scene 02
    def lane(lane_id: str, y: float, forward: bool) -> dict:
        ends = [[-100.0, y], [100.0, y]]
        return {"id": lane_id, "centerline": ends if forward else ends[::-1], "width": 3.5}

    blocks = [
        {"id": "fwd", "lanes": [lane("right", 0.0, True), lane("left", 3.5, True)]},
        {"id": "onc", "lanes": [lane("oncoming", -3.5, False)]},
    ]
    scene = scene_from_dict(
        {
            "ego": {"x": 0, "y": 0, "heading": 0, "vx": 0, "vy": 0, "ax": 0, "ay": 0},
            "map": {"roadblocks": blocks, "route_roadblock_ids": ["fwd"]},
        }
    )
    view = map_view(scene, box(-40, -40, 40, 40))
    lateral: dict[str, set[float]] = {}
    for m in view.markings:
        lateral.setdefault(m.kind, set()).update(np.round(m.points[:, 1], 2).tolist())
    assert lateral == {"dashed": {1.75}, "centre": {-1.75}, "solid": {5.25, -5.25}}
    # 3 m dashes every 9 m counted from the lane's start (x = -100), whatever the region cuts off
    dashes = sorted((m.points for m in view.markings if m.kind == "dashed"), key=lambda p: p[0, 0])[1:-1]
    assert len(dashes) >= 6
    assert np.allclose([np.hypot(*np.diff(d, axis=0).T).sum() for d in dashes], 3.0)
    assert np.allclose([(d[0, 0] + 100.0) % 9.0 for d in dashes], 0.0, atol=1e-6)
    assert {s.kind for s in view.surfaces} == {"roadblock"}
    assert [s.route for s in view.surfaces] == [True, False]


# ----------------------------------------------------------------------------------------- BEV ---


def test_bev_puts_the_ego_at_the_centre_heading_up():
    car = _agent("car", "vehicle", 10.0, 5.0, 4.5, 2.0)  # 10 m ahead, 5 m to the left
    img = render_bev(_scene([car]), size_px=200, meters=50.0)  # 4 px/m
    assert img.size == (200, 200)
    assert tuple(_rgb(img, 100, 99)) == EGO_COLOUR  # just ahead of the rear axle
    # ahead is up and left is left: (col, row) = (100 - 5·4, 100 - 10·4)
    assert tuple(_rgb(img, 80, 60)) == agent_colour("car", "vehicle")


def test_bev_shows_plans_and_lights():
    scene = _scene(red=True)
    plan = np.array([[3.0 * (i + 1), -0.2 * (i + 1), 0.0] for i in range(8)])
    base = np.asarray(render_bev(scene, size_px=200, meters=50.0)).astype(int)
    drawn = np.asarray(render_bev(scene, size_px=200, meters=50.0, plans={"plan": plan})).astype(int)
    assert (np.abs(drawn - base).sum(axis=2) > 0).sum() > 100
    # the red connector starts 15 m ahead: red pixels just past it, on the lane
    assert tuple(base[100 - int(17 * 4), 100]) == LIGHT_COLOURS[True]


# ------------------------------------------------------------------------------------ show-scene ---


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    show_scene.add_arguments(parser)
    return show_scene.run(parser.parse_args(argv))


def test_show_scene_cli_writes_a_png(tmp_path, capsys):
    path = tmp_path / "scene.json"
    path.write_text(dumps_scene(_scene([_agent("car", "vehicle", 15.0, 0.0, 4.5, 2.0)], red=False)))
    out = tmp_path / "scene.png"
    assert _cli([str(path), "--out", str(out), "--size", "96"]) == 0
    img = Image.open(out)
    assert img.format == "PNG" and img.width > 2 * 96 and img.height > 96
    assert "wrote" in capsys.readouterr().out


def test_show_scene_cli_reports_a_bad_file(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"ego": {"x": 0}}')
    assert _cli([str(path), "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "show-scene" in err and "ego" in err
    assert not (tmp_path / "x.png").exists()


def test_show_scene_image_has_both_views_and_a_caption():
    img = show_scene_image(_scene(), plan=np.array([[2.0 * (i + 1), 0.0, 0.0] for i in range(8)]), size=80)
    assert img.width == 2 * 80 + 4 and img.height > 80
