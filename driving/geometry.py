"""Frame transforms, interpolation and map geometry shared by every component.

Poses are numpy arrays (..., 3) of (x [m], y [m], heading [rad]). "Local" means the frame of the ego's
rear axle at t = 0: x forward, y left.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from driving.scene import EgoState, Lane, Roadblock, Scene, Trajectory

DEFAULT_DENSIFY_M = 0.5  # [m] nuPlan's baseline paths are dense


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Wrap to [-π, π)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def local_to_global(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(..., 3) poses relative to `origin` (3,) -> global frame."""
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    out = np.empty_like(poses)
    out[..., 0] = origin[0] + c * poses[..., 0] - s * poses[..., 1]
    out[..., 1] = origin[1] + s * poses[..., 0] + c * poses[..., 1]
    out[..., 2] = wrap_angle(poses[..., 2] + origin[2])
    return out


def global_to_local(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(..., 3) global poses -> relative to `origin` (3,)."""
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx, dy = poses[..., 0] - origin[0], poses[..., 1] - origin[1]
    out = np.empty_like(poses)
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    out[..., 2] = wrap_angle(poses[..., 2] - origin[2])
    return out


def points_local_to_global(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(..., 2) points relative to `origin` -> global."""
    points = np.asarray(points, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    return np.stack(
        [
            origin[0] + c * points[..., 0] - s * points[..., 1],
            origin[1] + s * points[..., 0] + c * points[..., 1],
        ],
        axis=-1,
    )


def points_global_to_local(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(..., 2) global points -> relative to `origin`."""
    points = np.asarray(points, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx, dy = points[..., 0] - origin[0], points[..., 1] - origin[1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


def ego_origin(ego: EgoState) -> np.ndarray:
    """(3,) the rear-axle pose at t = 0."""
    return np.array([ego.x, ego.y, ego.heading], dtype=np.float64)


def trajectory_global(traj: Trajectory, ego: EgoState) -> np.ndarray:
    """(N, 3) a trajectory's poses in the global frame."""
    poses = np.asarray(traj.poses, dtype=np.float64)
    return poses if traj.frame == "global" else local_to_global(poses, ego_origin(ego))


def trajectory_local(traj: Trajectory, ego: EgoState) -> np.ndarray:
    """(N, 3) a trajectory's poses in the ego's local frame."""
    poses = np.asarray(traj.poses, dtype=np.float64)
    return poses if traj.frame == "local" else global_to_local(poses, ego_origin(ego))


def interpolate_poses(times: np.ndarray, poses: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T, 3) poses at `query` times; headings are unwrapped first so the
    interpolation never goes the long way round. Query times outside `times` are clamped."""
    poses = np.asarray(poses, dtype=np.float64)
    heading = np.unwrap(poses[:, 2])
    out = np.stack(
        [
            np.interp(query, times, poses[:, 0]),
            np.interp(query, times, poses[:, 1]),
            np.interp(query, times, heading),
        ],
        axis=-1,
    )
    out[:, 2] = wrap_angle(out[:, 2])
    return out


def densify_polyline(points: np.ndarray, spacing: float = DEFAULT_DENSIFY_M) -> np.ndarray:
    """(N, 2) polyline -> points at most `spacing` apart, keeping every original vertex."""
    points = np.asarray(points, dtype=np.float64)
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:]):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / spacing)))
        frac = np.arange(1, n + 1)[:, None] / n
        out.append(a + frac * (b - a))
    return np.concatenate(out, axis=0)


def polyline_headings(points: np.ndarray) -> np.ndarray:
    """(N,) heading of each point of a polyline (last point repeats the last segment's)."""
    d = np.diff(points, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([h, h[-1:]])


def lane_polygon(lane: Lane) -> Polygon:
    """The lane's polygon: given, or its centerline buffered by half its width with flat ends."""
    if lane.polygon is not None:
        return Polygon(lane.polygon)
    assert lane.width is not None
    return LineString(lane.centerline).buffer(lane.width / 2.0, cap_style="flat", join_style="round")


def roadblock_polygon(rb: Roadblock) -> Polygon:
    """The roadblock's polygon: given, or the union of its lanes' polygons."""
    if rb.polygon is not None:
        return Polygon(rb.polygon)
    return shapely.union_all([lane_polygon(lane) for lane in rb.lanes])


def drivable_area(scene: Scene) -> shapely.Geometry:
    """Roadblocks ∪ intersections ∪ carparks. Connectors count only where an intersection covers
    them (as in NAVSIM), so they add nothing beyond the intersection polygons."""
    parts = [roadblock_polygon(rb) for rb in scene.map.roadblocks]
    parts += [Polygon(a.polygon) for a in scene.map.intersections or []]
    parts += [Polygon(a.polygon) for a in scene.map.carpark_areas or []]
    return shapely.union_all(parts)


def box_corners(x: np.ndarray, y: np.ndarray, heading: np.ndarray, length: float, width: float) -> np.ndarray:
    """(..., 4, 2) corners of boxes centred at (x, y): front-left, rear-left, rear-right, front-right."""
    x, y, heading = np.asarray(x), np.asarray(y), np.asarray(heading)
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    lon = np.array([1, -1, -1, 1]) * length / 2
    lat = np.array([1, 1, -1, -1]) * width / 2
    cx = x[..., None] + c * lon - s * lat
    cy = y[..., None] + s * lon + c * lat
    return np.stack([cx, cy], axis=-1)
