"""NAVSIM scenes -> scene JSON (SCENE_FORMAT.md) in the dataset folder format, for training and evaluating on
NAVSIM's navtrain / navtest instead of synthetic scenes. An optional extra: `navsim` and `nuplan-devkit`
are imported only by `import_navsim`, with NAVSIM's data and the nuPlan maps on disk (README: "NAVSIM data").

What a NAVSIM `Scene` (4 history + 10 future frames at 2 Hz) becomes:

    ego                 frame t0 = num_history - 1: global rear-axle pose, velocity and acceleration (ego
                        frame, as NAVSIM's EgoStatus); `history` from the 3 frames before it
    agents              every annotated track of frames t0 .. t0 + 10 (0 .. 5 s, what PDMS simulates), boxes
                        and velocities turned from each frame's ego frame into the global one (as NAVSIM's
                        `annotations_to_detection_tracks`); a track absent from a frame is null there
    map                 roadblocks, roadblock connectors (with their lanes / lane connectors: baseline path,
                        polygon, speed limit, successors), intersections and car parks within `radius` of the
                        ego, from the nuPlan map API; successors and route ids outside the radius are dropped
    route               frame t0's `roadblock_ids` (the log's route) that lie in the exported map
    traffic_lights      frame t0's (lane connector, red) pairs on exported connectors
    human_trajectory    the logged future, 8 poses at 0.5 s in the ego frame (EPDMS's human filter)
    sample              command (NAVSIM's one-hot: left, straight, right, unknown), expert = the human
                        trajectory (the ground truth), family = the map location, difficulty `common`,
                        the front camera (cam_f0 of frame t0) saved as PNG

Departures: NAVSIM corrects the route of some logs (`route_roadblock_correction`) when it builds metric
caches; this export takes the logged route as is. With a metric-cache folder, each scene also gets
`metric_cache/<token>.json`: NAVSIM's route lane ids and PDM-Closed reference (8 poses at 0.5 s, ego
frame), to compare with `elf-vla score`'s diagnostics (`route_lane_ids`, `reference_trajectory_0p5s`).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from driving.dataset import FORMAT, FORMAT_VERSION, IndexEntry, _relative_paths
from driving.geometry import global_to_local, local_to_global, wrap_angle
from driving.scene import (
    NUM_PLAN_POSES,
    Agent,
    Area,
    CameraImage,
    EgoState,
    Lane,
    MapData,
    Roadblock,
    Sample,
    Scene,
    TrafficLight,
    Trajectory,
    dumps_scene,
)

COMMANDS = ("left", "straight", "right", "unknown")  # NAVSIM's one-hot order
AGENT_TYPES = {"vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier", "czone_sign", "generic_object"}
AGENT_FRAMES = 11  # 0 .. 5 s at 0.5 s: what PDMS simulates
HISTORY_FRAMES = 3  # -1.5, -1.0, -0.5 s
INSTALL = """\
NAVSIM import needs NAVSIM's devkit and nuPlan's, with NAVSIM's data and the nuPlan maps:
  git clone https://github.com/autonomousvision/navsim && pip install -e navsim
  pip install "nuplan-devkit @ git+https://github.com/motional/nuplan-devkit/@nuplan-devkit-v1.2"
  NAVSIM's download scripts (navsim/download/): the maps, and the logs and sensor blobs of a split
  (navtrain, navtest); then give their folders to `elf-vla import-navsim` (README: "NAVSIM data")."""


class NavsimMissing(RuntimeError):
    """The optional NAVSIM dependencies are not installed."""


def require_navsim() -> None:
    missing = [name for name in ("navsim", "nuplan") if importlib.util.find_spec(name) is None]
    if missing:
        names = ", ".join("nuplan-devkit" if m == "nuplan" else m for m in missing)
        raise NavsimMissing(f"{names} not installed.\n{INSTALL}")


# --------------------------------------------------------------------------- scene parts ---


def _pose(ego_status: Any) -> np.ndarray:
    return np.asarray(ego_status.ego_pose, dtype=np.float64)[:3]


def _polygon(shape: Any) -> list[tuple[float, float]]:
    """A shapely polygon's outline, without the closing point."""
    return [(float(x), float(y)) for x, y in list(shape.exterior.coords)[:-1]]


def export_ego(frames: Sequence[Any], t0: int) -> EgoState:
    """The ego at frame t0 (global rear-axle pose; velocity and acceleration in the ego frame) and its
    three previous frames as history (their poses global, their dynamics in their own ego frames)."""

    def row(status: Any) -> list[float]:
        (vx, vy), (ax, ay) = status.ego_velocity[:2], status.ego_acceleration[:2]
        return [*_pose(status).tolist(), float(vx), float(vy), float(ax), float(ay)]

    x, y, heading, vx, vy, ax, ay = row(frames[t0].ego_status)
    history = [row(frames[t0 - k].ego_status) for k in range(HISTORY_FRAMES, 0, -1)] if t0 >= 3 else None
    return EgoState(x=x, y=y, heading=heading, vx=vx, vy=vy, ax=ax, ay=ay, history=history)  # type: ignore[arg-type]


def export_agents(frames: Sequence[Any], t0: int) -> list[Agent]:
    """Every annotated track of frames t0 .. t0 + 10 with its global [x, y, heading, vx, vy] per frame."""
    tracks: dict[str, dict] = {}
    for k in range(AGENT_FRAMES):
        if t0 + k >= len(frames):
            break
        frame = frames[t0 + k]
        origin, a = _pose(frame.ego_status), frame.annotations
        for i, name in enumerate(a.names):
            if name not in AGENT_TYPES:
                continue
            box = np.asarray(a.boxes[i], dtype=np.float64)  # x, y, z, length, width, height, heading
            x, y, heading = local_to_global(np.array([box[0], box[1], box[6]]), origin)
            c, s = np.cos(origin[2]), np.sin(origin[2])
            vx, vy = float(a.velocity_3d[i][0]), float(a.velocity_3d[i][1])
            state = (float(x), float(y), float(heading), c * vx - s * vy, s * vx + c * vy)
            track = tracks.setdefault(
                str(a.track_tokens[i]),
                {"type": name, "size": box[3:6], "states": [None] * AGENT_FRAMES},
            )
            track["states"][k] = state
    return [
        Agent(
            id=token,
            type=t["type"],
            length=float(t["size"][0]),
            width=float(t["size"][1]),
            height=float(t["size"][2]) if t["size"][2] > 0 else None,
            states=t["states"],
        )
        for token, t in tracks.items()
    ]


def _lane(lane: Any, known: set[str]) -> Lane:
    path = lane.baseline_path.discrete_path
    outgoing = [str(e.id) for e in lane.outgoing_edges if str(e.id) in known]
    speed = getattr(lane, "speed_limit_mps", None)
    return Lane(
        id=str(lane.id),
        centerline=[(float(p.x), float(p.y)) for p in path],
        polygon=_polygon(lane.polygon),
        speed_limit_mps=float(speed) if speed else None,
        outgoing=outgoing or None,
    )


def _block(block: Any, lanes: set[str], blocks: set[str]) -> Roadblock:
    outgoing = [str(e.id) for e in block.outgoing_edges if str(e.id) in blocks]
    return Roadblock(
        id=str(block.id),
        lanes=[_lane(lane, lanes) for lane in block.interior_edges],
        polygon=_polygon(block.polygon),
        outgoing=outgoing or None,
    )


def export_map(
    roadblocks: Sequence[Any],
    connectors: Sequence[Any],
    intersections: Sequence[Any],
    carparks: Sequence[Any],
    route_roadblock_ids: Sequence[str],
) -> MapData:
    """The map of nuPlan map objects near the ego (the map API's roadblocks and roadblock connectors with
    their interior lanes, intersections, car parks); references leaving them are dropped."""
    blocks = {str(b.id) for b in [*roadblocks, *connectors]}
    lanes = {str(lane.id) for b in [*roadblocks, *connectors] for lane in b.interior_edges}
    return MapData(
        roadblocks=[_block(b, lanes, blocks) for b in roadblocks],
        roadblock_connectors=[_block(b, lanes, blocks) for b in connectors] or None,
        intersections=[Area(id=str(a.id), polygon=_polygon(a.polygon)) for a in intersections] or None,
        carpark_areas=[Area(id=str(a.id), polygon=_polygon(a.polygon)) for a in carparks] or None,
        route_roadblock_ids=[str(r) for r in route_roadblock_ids if str(r) in blocks],
    )


def human_trajectory(frames: Sequence[Any], t0: int) -> Trajectory:
    """The logged future: 8 rear-axle poses at 0.5 s, in the ego frame at t0."""
    future = np.stack([_pose(frames[t0 + k].ego_status) for k in range(1, NUM_PLAN_POSES + 1)])
    local = global_to_local(future, _pose(frames[t0].ego_status))
    local[:, 2] = wrap_angle(local[:, 2])
    return Trajectory(poses=[tuple(p) for p in local.tolist()], frame="local")  # type: ignore[misc]


def command_of(one_hot: Sequence[float]) -> str:
    """NAVSIM's driving command, a one-hot over (left, straight, right, unknown)."""
    return COMMANDS[int(np.argmax(np.asarray(one_hot)))]


def export_scene(
    navsim_scene: Any, map_objects: dict[str, Sequence[Any]], image: CameraImage | None
) -> Scene:
    """One NAVSIM scene as a Scene; `map_objects` holds the nuPlan map objects near the ego under the keys
    roadblocks, connectors, intersections, carparks (`proximal_map_objects`)."""
    meta, frames = navsim_scene.scene_metadata, navsim_scene.frames
    t0 = meta.num_history_frames - 1
    current = frames[t0]
    scene_map = export_map(
        map_objects["roadblocks"],
        map_objects["connectors"],
        map_objects["intersections"],
        map_objects["carparks"],
        current.roadblock_ids,
    )
    connector_lanes = {lane.id for rb in scene_map.roadblock_connectors or [] for lane in rb.lanes}
    lights = [
        TrafficLight(lane_connector_id=str(lane), red=bool(red))
        for lane, red in current.traffic_lights
        if str(lane) in connector_lanes
    ]
    human = human_trajectory(frames, t0)
    sample = Sample(
        command=command_of(current.ego_status.driving_command),  # type: ignore[arg-type]
        expert=human,
        family=str(meta.map_name),
        difficulty="common",
        images={"front": image} if image is not None else None,
    )
    return Scene(
        id=str(meta.initial_token),
        ego=export_ego(frames, t0),
        map=scene_map,
        agents=export_agents(frames, t0),
        traffic_lights=lights or None,
        human_trajectory=human,
        traffic="log_replay",
        description=f"NAVSIM {meta.log_name} scene {meta.scene_token}",
        sample=sample,
    )


def metric_cache_reference(cache: Any) -> dict:
    """NAVSIM's route lane ids and PDM-Closed reference (8 poses at 0.5 s in the ego frame) of a metric
    cache, in the keys of `elf-vla score`'s diagnostics."""
    start = cache.ego_state.time_point.time_s
    states = cache.trajectory.get_sampled_trajectory()
    times = np.array([s.time_point.time_s - start for s in states])
    poses = np.array([[s.rear_axle.x, s.rear_axle.y, s.rear_axle.heading] for s in states])
    picked = [poses[int(np.argmin(np.abs(times - t)))] for t in np.arange(0.0, 4.01, 0.5)]
    origin = np.array(
        [cache.ego_state.rear_axle.x, cache.ego_state.rear_axle.y, cache.ego_state.rear_axle.heading]
    )
    return {
        "route_lane_ids": [str(i) for i in cache.route_lane_ids],
        "reference_trajectory_0p5s": global_to_local(np.array(picked), origin).tolist(),
    }


# --------------------------------------------------------------------------------- writing ---


def write_scenes(
    scenes: Iterable[tuple[Scene, np.ndarray | None]],
    out: str | Path,
    split: str,
    image_width: int,
    source: dict,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Write (scene, front camera RGB array) pairs as a dataset folder (`driving.dataset`), all in `split`;
    returns the manifest. Images are resized to `image_width` px, keeping their aspect ratio."""
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: not empty; choose a new --out folder or delete this one")
    families: Counter[str] = Counter()
    count = 0
    with open(_mkdir(root) / "index.jsonl", "w") as index:
        for number, (scene, pixels) in enumerate(scenes):
            assert scene.id is not None and scene.sample is not None
            scene_path, images = _relative_paths(scene.id, number, ["front"] if pixels is not None else [])
            if pixels is not None:
                picture = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
                height = max(1, round(picture.height * image_width / picture.width))
                picture = picture.resize((image_width, height), Image.Resampling.BILINEAR)
                picture.save(_mkdir((root / images["front"]).parent) / Path(images["front"]).name)
                camera = CameraImage(path=images["front"], width=image_width, height=height)
                scene = scene.model_copy(
                    update={"sample": scene.sample.model_copy(update={"images": {"front": camera}})}
                )
            (_mkdir((root / scene_path).parent) / Path(scene_path).name).write_text(dumps_scene(scene))
            entry = IndexEntry(number, scene.id, scene.sample.family, "common", split, scene.sample.command,
                               scene_path, images)  # fmt: skip
            index.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
            families[scene.sample.family] += 1
            count += 1
            if on_progress:
                on_progress(1)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "count": count,
        "seed": None,
        "source": source,
        "families": dict(sorted(families.items())),
        "difficulty": {"common": count},
        "splits": {s: (count if s == split else 0) for s in ("train", "val", "test")},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------------------ NAVSIM side ---


def proximal_map_objects(map_api: Any, x: float, y: float, radius: float) -> dict[str, list]:
    """The nuPlan map objects within `radius` [m] of (x, y), by the keys `export_scene` reads."""
    from nuplan.common.actor_state.state_representation import Point2D
    from nuplan.common.maps.maps_datatypes import SemanticMapLayer as L

    found = map_api.get_proximal_map_objects(
        Point2D(x, y), radius, [L.ROADBLOCK, L.ROADBLOCK_CONNECTOR, L.INTERSECTION, L.CARPARK_AREA]
    )
    return {
        "roadblocks": found[L.ROADBLOCK],
        "connectors": found[L.ROADBLOCK_CONNECTOR],
        "intersections": found[L.INTERSECTION],
        "carparks": found[L.CARPARK_AREA],
    }


def import_navsim(
    logs: Path,
    sensor_blobs: Path,
    maps_root: Path,
    out: Path,
    split: str,
    radius: float = 100.0,
    image_width: int = 512,
    max_scenes: int | None = None,
    tokens: list[str] | None = None,
    metric_cache: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Export the NAVSIM scenes of a logs folder (navtrain, navtest, ...) into a dataset folder."""
    require_navsim()
    os.environ["NUPLAN_MAPS_ROOT"] = str(maps_root)  # read when navsim.common.dataclasses is imported
    from navsim.common.dataclasses import SceneFilter, SensorConfig
    from navsim.common.dataloader import MetricCacheLoader, SceneLoader

    sensors = SensorConfig.build_no_sensors()
    sensors.cam_f0 = [3]  # the front camera of frame t0 only (4 history frames)
    loader = SceneLoader(logs, sensor_blobs, SceneFilter(max_scenes=max_scenes, tokens=tokens), sensors)
    caches = MetricCacheLoader(metric_cache) if metric_cache is not None else None

    def scenes() -> Iterable[tuple[Scene, np.ndarray | None]]:
        for token in loader.tokens:
            navsim_scene = loader.get_scene_from_token(token)
            x, y, _ = _pose(
                navsim_scene.frames[navsim_scene.scene_metadata.num_history_frames - 1].ego_status
            )
            scene = export_scene(navsim_scene, proximal_map_objects(navsim_scene.map_api, x, y, radius), None)
            if not scene.map.route_roadblock_ids:
                continue  # the route leaves the exported map at once: nothing to score against
            if caches is not None and token in caches.tokens:
                reference = metric_cache_reference(caches.get_from_token(token))
                (_mkdir(out / "metric_cache") / f"{token}.json").write_text(json.dumps(reference) + "\n")
            frame = navsim_scene.frames[navsim_scene.scene_metadata.num_history_frames - 1]
            yield scene, frame.cameras.cam_f0.image

    source = {"navsim_logs": str(logs), "split": split, "radius_m": radius, "metric_cache": str(metric_cache)}
    return write_scenes(scenes(), out, split, image_width, source, on_progress)
