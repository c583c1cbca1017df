"""Scene JSON: the shared known-answer scenes load and round-trip; bad input names the JSON path."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driving.geometry import (
    densify_polyline,
    drivable_area,
    global_to_local,
    interpolate_poses,
    local_to_global,
    trajectory_global,
    trajectory_local,
    wrap_angle,
)
from driving.scene import SceneError, dumps_scene, load_scene, scene_from_dict, scene_to_dict


def test_shared_scenes_round_trip(shared_scene_path, tmp_path):
    original = json.loads(shared_scene_path.read_text())
    scene = load_scene(shared_scene_path)
    assert scene_to_dict(scene) == original
    out = tmp_path / "again.json"
    out.write_text(dumps_scene(scene))
    again = load_scene(out)
    assert again == scene
    assert dumps_scene(again) == dumps_scene(scene)


def test_shared_scene_content(shared_scene_path):
    scene = load_scene(shared_scene_path)
    assert len(scene.trajectory.poses) == 8
    assert scene.map.route_roadblock_ids
    assert drivable_area(scene).contains(__import__("shapely").Point(scene.ego.x, scene.ego.y)), (
        "the ego starts on the road"
    )


def _minimal() -> dict:
    return {
        "ego": {"x": 0, "y": 0, "heading": 0, "vx": 5, "vy": 0, "ax": 0, "ay": 0},
        "map": {
            "roadblocks": [
                {"id": "rb0", "lanes": [{"id": "l0", "centerline": [[-10, 0], [100, 0]], "width": 3.5}]},
                {"id": "rb1", "lanes": [{"id": "l1", "centerline": [[100, 0], [200, 0]], "width": 3.5}]},
                {"id": "rb2", "lanes": [{"id": "l2", "centerline": [[200, 0], [300, 0]], "width": 3.5}]},
            ],
            "route_roadblock_ids": ["rb0"],
        },
        "agents": [],
        "trajectory": {"poses": [[i, 0, 0] for i in range(1, 9)], "frame": "local"},
    }


BAD_INPUTS = [
    (
        lambda d: d["map"]["roadblocks"][2]["lanes"][0].update(centerline=[[0, 0]]),
        "map.roadblocks[2].lanes[0].centerline: need >= 2 points",
    ),
    (lambda d: d["ego"].pop("vx"), "ego.vx: Field required"),
    (lambda d: d["ego"].update(heading="north"), "ego.heading:"),
    (
        lambda d: d["map"]["roadblocks"][0]["lanes"][0].pop("width"),
        "map.roadblocks[0].lanes[0]: a lane needs `polygon` or `width`",
    ),
    (
        lambda d: d["map"].update(route_roadblock_ids=["nope"]),
        "map.route_roadblock_ids[0]: unknown roadblock 'nope'",
    ),
    (
        lambda d: d["map"]["roadblocks"][1]["lanes"][0].update(id="l0"),
        "map.roadblocks[1].lanes[0].id: duplicate id 'l0'",
    ),
    (
        lambda d: d["map"]["roadblocks"][0]["lanes"][0].update(outgoing=["zz"]),
        "map.roadblocks[0].lanes[0].outgoing[0]: unknown lane 'zz'",
    ),
    (
        lambda d: d["agents"].append(
            {
                "id": "a",
                "type": "car",
                "length": 4,
                "width": 2,
                "x": 0,
                "y": 0,
                "heading": 0,
                "vx": 0,
                "vy": 0,
            }
        ),
        "agents[0].type: Input should be 'vehicle'",
    ),
    (
        lambda d: d["agents"].append({"id": "a", "type": "vehicle", "length": 4, "width": 2, "x": 0}),
        "agents[0]: an agent needs `states` or all of x, y, heading, vx, vy; missing: y, heading, vx, vy",
    ),
    (
        lambda d: d["agents"].append(
            {"id": "a", "type": "vehicle", "length": -4, "width": 2, "states": [[0, 0, 0, 0, 0]]}
        ),
        "agents[0].length: Input should be greater than 0",
    ),
    (lambda d: d["trajectory"].update(frame="ego"), "trajectory.frame: Input should be 'local' or 'global'"),
    (
        lambda d: d["trajectory"]["poses"].__setitem__(3, [1.0, float("nan"), 0.0]),
        "trajectory.poses: poses must be finite",
    ),
    (lambda d: d["ego"].update(history=[[0, 0, 0, 0, 0, 0, 0]]), "ego.history: need exactly 3 states"),
    (
        lambda d: d.update(traffic_lights=[{"lane_connector_id": "l0", "red": True}]),
        "traffic_lights[0].lane_connector_id: 'l0' is not a lane of map.roadblock_connectors",
    ),
    (lambda d: d.update(trajectroy={}), "trajectroy: unknown key"),
]


@pytest.mark.parametrize("mutate, expected", BAD_INPUTS, ids=[e for _, e in BAD_INPUTS])
def test_bad_input_names_the_json_path(mutate, expected):
    data = _minimal()
    scene_from_dict(copy.deepcopy(data))  # the unmutated scene is valid
    mutate(data)
    with pytest.raises(SceneError) as info:
        scene_from_dict(data, source="x.json")
    assert expected in str(info.value)
    assert str(info.value).startswith("x.json: ")


def test_unreadable_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"ego": ')
    with pytest.raises(SceneError, match=r"bad.json: \(file\): not valid JSON at line 1"):
        load_scene(bad)
    with pytest.raises(SceneError, match="cannot read"):
        load_scene(tmp_path / "missing.json")
    with pytest.raises(SceneError, match="expected a JSON object"):
        scene_from_dict([1, 2])


def test_unset_optional_keys_stay_absent():
    scene = scene_from_dict(_minimal())
    out = scene_to_dict(scene)
    assert "traffic_lights" not in out and "sample" not in out and "history" not in out["ego"]
    assert "interval_length" not in out["trajectory"]
    assert scene.trajectory.interval_length == 0.5


def test_constant_velocity_agent_states():
    data = _minimal()
    data["agents"] = [
        {
            "id": "a",
            "type": "vehicle",
            "length": 4,
            "width": 2,
            "x": 10,
            "y": 1,
            "heading": 0.1,
            "vx": 2,
            "vy": -1,
        }
    ]
    agent = scene_from_dict(data).agents[0]
    assert agent.state_at_frame(4) == pytest.approx((14.0, -1.0, 0.1, 2, -1))


poses = st.tuples(st.floats(-500, 500), st.floats(-500, 500), st.floats(-np.pi, np.pi - 1e-9))


@settings(max_examples=60, deadline=None)
@given(origin=poses, pts=st.lists(poses, min_size=1, max_size=8))
def test_frame_transforms_invert(origin, pts):
    origin, pts = np.array(origin), np.array(pts)
    back = global_to_local(local_to_global(pts, origin), origin)
    np.testing.assert_allclose(back[:, :2], pts[:, :2], atol=1e-8)
    np.testing.assert_allclose(wrap_angle(back[:, 2] - pts[:, 2]), 0, atol=1e-9)


def test_trajectory_frames(shared_scene_path):
    scene = load_scene(shared_scene_path)
    g = trajectory_global(scene.trajectory, scene.ego)
    local_again = global_to_local(g, np.array([scene.ego.x, scene.ego.y, scene.ego.heading]))
    np.testing.assert_allclose(local_again, trajectory_local(scene.trajectory, scene.ego), atol=1e-9)


def test_interpolation_takes_the_short_way_round():
    poses = np.array([[0, 0, np.pi - 0.1], [1, 0, -np.pi + 0.1]])
    mid = interpolate_poses(np.array([0.0, 1.0]), poses, np.array([0.5]))
    assert abs(abs(mid[0, 2]) - np.pi) < 1e-9
    np.testing.assert_allclose(mid[0, :2], [0.5, 0.0])


def test_densify_keeps_vertices_and_spacing():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 3.2]])
    dense = densify_polyline(line, 0.5)
    steps = np.hypot(*np.diff(dense, axis=0).T)
    assert steps.max() <= 0.5 + 1e-12
    for v in line:
        assert np.any(np.all(np.isclose(dense, v), axis=1))
