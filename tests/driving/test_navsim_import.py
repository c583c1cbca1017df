"""NAVSIM -> scene JSON on NAVSIM-shaped scene objects built here (navsim and nuplan-devkit are an optional
extra, not installed in CI): frames are converted into the global frame, the map keeps only what it
exported, the human plan is the ground truth, and the result is a scoreable, loadable dataset scene."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest
from shapely.geometry import LineString, Polygon

from driving.geometry import global_to_local
from driving.navsim_import import (
    NavsimMissing,
    export_scene,
    metric_cache_reference,
    require_navsim,
    write_scenes,
)

HEADING = np.pi / 2  # the road runs north
SPEED = 10.0  # [m/s] ego
LEAD = 30.0  # [m] the lead vehicle's gap, it drives at the ego's speed


def _ego_pose(k: int) -> np.ndarray:
    """The ego's global rear-axle pose at frame k (t0 = 3), driving north at SPEED."""
    return np.array([100.0, 50.0 + SPEED * 0.5 * (k - 3), HEADING])


def _frame(k: int) -> NS:
    ego = _ego_pose(k)
    lead = np.array([100.0, ego[1] + LEAD, HEADING])
    x, y, h = global_to_local(lead, ego)  # NAVSIM's boxes are in each frame's ego frame
    annotations = NS(
        boxes=np.array([[x, y, 0.8, 4.5, 2.0, 1.6, h], [5.0, 4.0, 0.5, 0.5, 0.5, 1.0, 0.0]]),
        names=["vehicle", "traffic_cone"],
        velocity_3d=np.array([[SPEED, 0.0, 0.0], [0.0, 0.0, 0.0]]),  # ego frame
        track_tokens=["lead", f"cone-{k}"],  # the cone is re-detected as a new track each frame
    )
    status = NS(
        ego_pose=ego,
        ego_velocity=np.array([SPEED, 0.0]),
        ego_acceleration=np.array([0.0, 0.0]),
        driving_command=np.array([0, 1, 0, 0]),
    )
    return NS(
        ego_status=status,
        annotations=annotations,
        roadblock_ids=["rb-1", "rb-beyond"],
        traffic_lights=[("lc-1", True), ("lc-beyond", False)],
        cameras=NS(cam_f0=NS(image=np.full((90, 160, 3), 120, dtype=np.uint8))),
    )


def _lane(lane_id: str, y0: float, y1: float, outgoing: list) -> NS:
    line = LineString([(100.0, y0), (100.0, y1)])
    path = [NS(x=p[0], y=p[1], heading=HEADING) for p in np.linspace((100.0, y0), (100.0, y1), 41)]
    return NS(
        id=lane_id, baseline_path=NS(discrete_path=path), polygon=line.buffer(2.0, cap_style="flat"),
        speed_limit_mps=15.0, outgoing_edges=outgoing,
    )  # fmt: skip


@pytest.fixture
def navsim_scene() -> NS:
    beyond = NS(id="lane-beyond")
    connector_lane = _lane("lc-1", 250.0, 300.0, [beyond])
    lane = _lane("lane-1", 0.0, 250.0, [connector_lane])
    road = NS(id="rb-1", polygon=Polygon([(97, 0), (103, 0), (103, 250), (97, 250)]), interior_edges=[lane],
              outgoing_edges=[NS(id="rbc-1")])  # fmt: skip
    connector = NS(id="rbc-1", polygon=Polygon([(97, 250), (103, 250), (103, 300), (97, 300)]),
                   interior_edges=[connector_lane], outgoing_edges=[NS(id="rb-beyond")])  # fmt: skip
    junction = NS(id="int-1", polygon=Polygon([(95, 248), (105, 248), (105, 302), (95, 302)]))
    meta = NS(num_history_frames=4, num_future_frames=10, initial_token="tok0", scene_token="s0",
              map_name="us-nv-las-vegas-strip", log_name="log-1")  # fmt: skip
    frames = [_frame(k) for k in range(14)]
    objects = {"roadblocks": [road], "connectors": [connector], "intersections": [junction], "carparks": []}
    return NS(scene_metadata=meta, frames=frames, objects=objects)


def test_frames_become_global_states_and_the_human_plan_the_ground_truth(navsim_scene):
    scene = export_scene(navsim_scene, navsim_scene.objects, None)
    assert (scene.ego.x, scene.ego.y, scene.ego.heading, scene.ego.vx) == (100.0, 50.0, HEADING, SPEED)
    assert [row[1] for row in scene.ego.history] == [35.0, 40.0, 45.0]  # -1.5, -1.0, -0.5 s
    lead = next(a for a in scene.agents if a.id == "lead")
    assert len(lead.states) == 11 and lead.length == 4.5 and lead.width == 2.0
    for k, (x, y, h, vx, vy) in enumerate(lead.states):  # frame t0 + k, global
        assert (x, y, h, vx, vy) == pytest.approx(
            (100.0, 80.0 + SPEED * 0.5 * k, HEADING, 0.0, SPEED), abs=1e-9
        )
    cone = next(a for a in scene.agents if a.id == "cone-5")  # seen only at frame 5 = t0 + 2
    assert [s is not None for s in cone.states] == [k == 2 for k in range(11)]
    assert cone.states[2][:2] == pytest.approx((96.0, 65.0))  # 5 m ahead, 4 m left of a north-facing ego
    human = np.array(scene.human_trajectory.poses)
    assert human == pytest.approx(np.stack([SPEED * 0.5 * np.arange(1, 9), np.zeros(8), np.zeros(8)], axis=1))
    assert scene.sample.expert == scene.human_trajectory and scene.sample.command == "straight"
    assert scene.sample.family == "us-nv-las-vegas-strip" and scene.id == "tok0"


def test_references_outside_the_exported_map_are_dropped(navsim_scene):
    m = export_scene(navsim_scene, navsim_scene.objects, None).map
    assert m.route_roadblock_ids == ["rb-1"]
    assert m.roadblocks[0].outgoing == ["rbc-1"] and m.roadblock_connectors[0].outgoing is None
    assert (
        m.roadblocks[0].lanes[0].outgoing == ["lc-1"] and m.roadblock_connectors[0].lanes[0].outgoing is None
    )
    scene = export_scene(navsim_scene, navsim_scene.objects, None)
    assert [(t.lane_connector_id, t.red) for t in scene.traffic_lights] == [("lc-1", True)]


def test_the_exported_scene_scores_like_the_drive_it_logged(navsim_scene):
    from scorer import prepare, score

    scene = export_scene(navsim_scene, navsim_scene.objects, None)
    human = np.array(scene.human_trajectory.poses)
    rushing = human * np.array([2.2, 1.0, 1.0])  # 22 m/s: into the lead vehicle 30 m ahead
    cache = prepare(scene)
    pdms = score(cache, np.stack([human, rushing]), "pdms")
    assert pdms.no_at_fault_collisions.tolist() == [1.0, 0.0]  # the lead vehicle is where it was logged
    assert pdms.drivable_area_compliance[0] == 1.0 and pdms.total[0] > 0.8  # on the exported road
    epdms = score(cache, human[None], "epdms")
    assert epdms.scene_type == "ORIGINAL" and epdms.total[0] > 0.8


def test_written_folder_is_a_dataset_with_the_front_camera(navsim_scene, tmp_path):
    from actors.prompts import front_image
    from driving.dataset import SceneDataset

    scene = export_scene(navsim_scene, navsim_scene.objects, None)
    pixels = navsim_scene.frames[3].cameras.cam_f0.image
    manifest = write_scenes([(scene, pixels)], tmp_path / "navtest", "test", 64, {"navsim_logs": "x"})
    assert manifest["count"] == 1 and manifest["splits"]["test"] == 1
    dataset = SceneDataset(tmp_path / "navtest")
    [entry] = list(dataset.entries("test"))
    assert (entry.id, entry.family, entry.command) == ("tok0", "us-nv-las-vegas-strip", "straight")
    loaded = dataset.load(entry)
    assert loaded.sample.images["front"].width == 64 and loaded.sample.images["front"].height == 36
    assert front_image(loaded, dataset.root).size == (64, 36)
    assert loaded.agents == scene.agents and loaded.map == scene.map


def test_metric_cache_reference_in_the_ego_frame():
    def state(t: float) -> NS:
        return NS(time_point=NS(time_s=10.0 + t), rear_axle=NS(x=100.0, y=50.0 + 8.0 * t, heading=HEADING))

    cache = NS(
        ego_state=state(0.0),
        trajectory=NS(get_sampled_trajectory=lambda: [state(t) for t in np.arange(0.0, 4.05, 0.1)]),
        route_lane_ids=[1, 2],
    )
    ref = metric_cache_reference(cache)
    assert ref["route_lane_ids"] == ["1", "2"]
    assert np.array(ref["reference_trajectory_0p5s"]) == pytest.approx(
        np.stack([8.0 * np.arange(0.0, 4.01, 0.5), np.zeros(9), np.zeros(9)], axis=1), abs=1e-9
    )


def test_without_navsim_the_error_names_what_to_install(tmp_path, capsys):
    try:
        require_navsim()
    except NavsimMissing as err:
        assert "not installed" in str(err) and "pip install -e navsim" in str(err)
    else:
        pytest.skip("navsim is installed here")
    from cluster.cli import main

    argv = ["import-navsim", "--logs", "l", "--sensor-blobs", "s", "--maps-root", "m"]
    assert main([*argv, "--out", str(tmp_path / "o"), "--split", "test"]) == 2
    assert "nuplan-devkit" in capsys.readouterr().err
