"""A front pinhole camera on the ego at t = 0, rendered with numpy + Pillow only.

Painter's algorithm: sky and off-road ground, then the road surfaces (carparks, roadblocks,
intersections, connectors), the lane markings as thin ground strips, then the agents and signal heads as
shaded 3D boxes from far to near, then (optionally) plans as lines on top. Everything is drawn at
`supersample`× the size and reduced with a box filter, which is the anti-aliasing.

Ground polygons and box faces are clipped in camera space at a near plane before projection, so a road
that passes behind the camera never wraps around the image. The scene has no heights: boxes use the
agent's `height` or a per-type default, and signal heads are an invented overhead lamp at the connector's
start (red or green), which is what makes the light state visible in the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import Polygon

from driving.geometry import box_corners, ego_origin, global_to_local
from driving.render_common import (
    LIGHT_COLOURS,
    RGB,
    LightMarker,
    agent_colour,
    map_view,
    plan_colours,
)
from driving.scene import Scene

NEAR_M = 0.3  # [m] near clipping plane
FAR_M = 150.0  # [m] how far ahead the ground and objects are drawn

SKY_TOP: RGB = (95, 140, 200)
SKY_HORIZON: RGB = (190, 210, 230)
GROUND: RGB = (95, 115, 75)  # off-road: grass
SURFACE_COLOURS: dict[str, RGB] = {
    "carpark": (120, 112, 125),
    "roadblock": (72, 72, 76),
    "intersection": (92, 88, 84),
    "connector": (82, 82, 88),
}
MARKING_STYLE: dict[str, tuple[RGB, float]] = {  # colour, width [m]
    "dashed": ((235, 235, 235), 0.18),
    "solid": ((235, 235, 235), 0.18),
    "centre": ((235, 190, 40), 0.22),
    "stop": ((245, 245, 245), 0.5),
}
DEFAULT_HEIGHTS: dict[str, float] = {  # [m] when an agent has no `height`
    "vehicle": 1.6,
    "pedestrian": 1.75,
    "bicycle": 1.7,
    "traffic_cone": 0.7,
    "barrier": 1.0,
    "czone_sign": 1.5,
    "generic_object": 1.0,
}
TRUCK_LENGTH_M, TRUCK_HEIGHT_M = 6.5, 3.2  # vehicles longer than this are boxy and taller by default
GLASS: RGB = (45, 55, 70)
DARK: RGB = (40, 40, 45)
LIGHT_DIR = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])  # towards the sun
LAMP_BOTTOM_M, LAMP_TOP_M = 3.0, 4.0  # [m] height of the signal heads
BRAKE_LIGHT: RGB = (255, 35, 35)
BRAKE_BAR = (0.28, 0.52)  # [fraction of height] the lit band across a braking vehicle's rear

# ------------------------------------------------------------------------------------- config ---

CameraPreset = Literal["default", "tiny"]
_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # What the tiny student sees: an elevated virtual camera pitched down so the horizon sits near the
    # top, which spreads the road's curvature over most of the 64 rows (PITFALLS.md). 40 deg of field of
    # view: a gentle bend 30-70 m ahead moves ~2x the pixels it moves at 70 deg (a 1.5 m bend at 55 m:
    # ~2.4 px, not ~1.3). Measured with the road-shape think: the 12k-scene SFT student went from 0.750 to
    # 0.795 PDMS on common validation scenes (curved roads 0.570 -> 0.669) with this camera.
    "tiny": {
        "width": 64,
        "height": 64,
        "fov_deg": 40.0,
        "mount_height": 4.5,
        "pitch_deg": 16.5,
        "supersample": 4,
    },
}


class CameraConfig(BaseModel):
    """A front pinhole camera. `preset` fills in every field that is not given explicitly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: CameraPreset = "default"
    width: int = Field(default=224, ge=8, le=4096)  # [px]
    height: int = Field(default=224, ge=8, le=4096)  # [px]
    fov_deg: float = Field(default=70.0, gt=1.0, lt=170.0)  # horizontal field of view [deg]
    mount_height: float = Field(default=1.6, gt=0.0)  # [m] above the ground
    pitch_deg: float = Field(default=8.0, ge=-60.0, le=85.0)  # [deg] down positive
    forward_offset: float = 1.5  # [m] ahead of the rear axle
    supersample: int = Field(default=2, ge=1, le=8)  # drawn at this multiple of the size, then reduced

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset", "default") in _PRESETS:
            return {**_PRESETS[data.get("preset", "default")], **data}
        return data


TINY_CAMERA = CameraConfig(preset="tiny")

# ------------------------------------------------------------------------------------ pinhole ---


@dataclass(frozen=True)
class _Pinhole:
    """Camera at `position` in the ego's local frame (x forward, y left, z up). Camera axes: right,
    down, forward. Pixel (u, v) = (cx + f·X/Z, cy + f·Y/Z) at the drawing (supersampled) resolution."""

    position: np.ndarray  # (3,) [m]
    rotation: np.ndarray  # (3, 3) rows: right, down, forward, in the local frame
    focal: float  # [px]
    cx: float  # [px]
    cy: float  # [px]

    @classmethod
    def from_config(cls, cfg: CameraConfig) -> _Pinhole:
        s = cfg.supersample
        p = math.radians(cfg.pitch_deg)
        rotation = np.array(
            [[0.0, -1.0, 0.0], [-math.sin(p), 0.0, -math.cos(p)], [math.cos(p), 0.0, -math.sin(p)]]
        )
        focal = (cfg.width * s / 2.0) / math.tan(math.radians(cfg.fov_deg) / 2.0)
        position = np.array([cfg.forward_offset, 0.0, cfg.mount_height])
        return cls(position, rotation, focal, cfg.width * s / 2.0, cfg.height * s / 2.0)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) local points -> (..., 3) camera coordinates [m]."""
        return (points - self.position) @ self.rotation.T

    def project(self, cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera coordinates with Z > 0 -> (..., 2) pixels."""
        return np.stack(
            [
                self.cx + self.focal * cam[..., 0] / cam[..., 2],
                self.cy + self.focal * cam[..., 1] / cam[..., 2],
            ],
            axis=-1,
        )

    def horizon_row(self) -> float:
        """[px] where the ground meets the sky (at infinite distance)."""
        forward = self.rotation @ np.array([1.0, 0.0, 0.0])
        return self.cy + self.focal * forward[1] / forward[2] if forward[2] > 1e-6 else -1e9


def _clip_near(cam: np.ndarray) -> np.ndarray:
    """Sutherland–Hodgman against Z >= NEAR_M for a closed (N, 3) polygon in camera coordinates."""
    inside = cam[:, 2] >= NEAR_M
    if inside.all():
        return cam
    if not inside.any():
        return cam[:0]
    nxt = np.roll(cam, -1, axis=0)
    crossing = inside != np.roll(inside, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crossing, (NEAR_M - cam[:, 2]) / (nxt[:, 2] - cam[:, 2]), 0.0)
    cut = cam + t[:, None] * (nxt - cam)
    candidates = np.stack([cam, cut], axis=1)  # (N, 2, 3): each vertex, then where its edge crosses
    keep = np.stack([inside, crossing], axis=1)
    return candidates[keep]


def _clip_segment(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A segment in camera coordinates cut to Z >= NEAR_M, or None if wholly behind."""
    if a[2] < NEAR_M and b[2] < NEAR_M:
        return None
    if a[2] < NEAR_M:
        a = a + (NEAR_M - a[2]) / (b[2] - a[2]) * (b - a)
    elif b[2] < NEAR_M:
        b = b + (NEAR_M - b[2]) / (a[2] - b[2]) * (a - b)
    return a, b


def _draw_polygon(draw: ImageDraw.ImageDraw, cam: _Pinhole, local: np.ndarray, fill: RGB) -> None:
    """Fill a planar (N, 3) local-frame polygon."""
    clipped = _clip_near(cam.to_camera(local))
    if len(clipped) >= 3:
        draw.polygon(cam.project(clipped).ravel().tolist(), fill=fill)


# ------------------------------------------------------------------------------------- ground ---


def _view_region(cfg: CameraConfig) -> Polygon:
    """The ground the camera can see, as a local-frame polygon (a generous wedge)."""
    spread = math.tan(math.radians(min(cfg.fov_deg, 160.0)) / 2.0) * 1.15
    x0 = cfg.forward_offset - 3.0
    return Polygon([(x0, 4.0), (FAR_M, 4.0 + FAR_M * spread), (FAR_M, -4.0 - FAR_M * spread), (x0, -4.0)])


def _ground_z(points: np.ndarray, z: float = 0.0) -> np.ndarray:
    return np.concatenate([points, np.full((len(points), 1), z)], axis=1)


def _strip(points: np.ndarray, width: float) -> np.ndarray:
    """(N, 2) polyline -> (2N, 2) polygon of a band `width` [m] wide around it."""
    d = np.gradient(points, axis=0) if len(points) > 2 else np.repeat(np.diff(points, axis=0), 2, axis=0)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) * (width / 2.0)
    return np.concatenate([points + normal, (points - normal)[::-1]])


def _draw_ground(
    draw: ImageDraw.ImageDraw, cam: _Pinhole, scene: Scene, cfg: CameraConfig
) -> list[LightMarker]:
    view = map_view(scene, _view_region(cfg))
    for surface in view.surfaces:
        fill = SURFACE_COLOURS[surface.kind]
        for i, ring in enumerate(surface.rings):
            _draw_polygon(draw, cam, _ground_z(ring), fill if i == 0 else GROUND)
    for marking in view.markings:
        colour, width = MARKING_STYLE[marking.kind]
        _draw_polygon(draw, cam, _ground_z(_strip(marking.points, width), 0.01), colour)
    return view.lights


# -------------------------------------------------------------------------------------- boxes ---


@dataclass(frozen=True)
class _Box:
    x: float  # local centre [m]
    y: float
    heading: float  # [rad] local
    length: float  # [m]
    width: float
    z0: float  # [m] bottom
    z1: float  # [m] top
    colour: RGB
    lit: bool = False  # a lamp: barely shaded


# corner indices of the faces front, rear, left, right, top (0-3: bottom FL, RL, RR, FR as box_corners
# gives them; 4-7: the same on top)
_FACE_CORNERS = np.array([[3, 0, 4, 7], [1, 2, 6, 5], [0, 1, 5, 4], [2, 3, 7, 6], [4, 5, 6, 7]])


def _box_corners(boxes: list[_Box]) -> np.ndarray:
    """(B, 8, 3) local corners: bottom FL, RL, RR, FR, then the same on top [m]."""
    x, y, h, length, width, z0, z1 = (
        np.array([getattr(b, k) for b in boxes]) for k in ("x", "y", "heading", "length", "width", "z0", "z1")
    )
    xy = box_corners(x, y, h, length[:, None], width[:, None])  # (B, 4, 2)
    bottom = np.concatenate([xy, np.broadcast_to(z0[:, None, None], (len(boxes), 4, 1))], axis=2)
    top = np.concatenate([xy, np.broadcast_to(z1[:, None, None], (len(boxes), 4, 1))], axis=2)
    return np.concatenate([bottom, top], axis=1)


def _draw_boxes(draw: ImageDraw.ImageDraw, cam: _Pinhole, boxes: list[_Box]) -> None:
    """Boxes in the given (far-to-near) order; per box the faces whose outward normal points at the
    camera, shaded by their angle to the light. All the geometry is computed in one numpy pass."""
    if not boxes:
        return
    corners = _box_corners(boxes)
    in_cam = cam.to_camera(corners)  # (B, 8, 3)
    in_front = in_cam[..., 2] >= NEAR_M  # (B, 8)
    c, s = np.cos([b.heading for b in boxes]), np.sin([b.heading for b in boxes])
    zero, one = np.zeros_like(c), np.ones_like(c)
    normals = np.stack(  # (B, 5, 3): front, rear, left, right, top
        [
            np.stack(n, axis=-1)
            for n in ((c, s, zero), (-c, -s, zero), (-s, c, zero), (s, -c, zero), (zero, zero, one))
        ],
        axis=1,
    )
    to_cam = cam.position - corners[:, _FACE_CORNERS].mean(axis=2)  # (B, 5, 3)
    visible = np.einsum("bfk,bfk->bf", normals, to_cam) > 0.0
    light = np.maximum(0.0, normals @ LIGHT_DIR)  # (B, 5)
    lit = np.array([b.lit for b in boxes])[:, None]
    shade = np.where(lit, 0.85 + 0.15 * light, 0.45 + 0.55 * light)
    colours = np.minimum(255, np.round(shade[..., None] * np.array([b.colour for b in boxes])[:, None, :]))
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = cam.project(in_cam)  # (B, 8, 2), used only for boxes wholly in front
    for b in np.flatnonzero(in_front.any(axis=1)).tolist():
        whole = bool(in_front[b].all())
        for f in np.flatnonzero(visible[b]).tolist():
            fill = tuple(colours[b, f].astype(int).tolist())
            if whole:
                draw.polygon(pixels[b, _FACE_CORNERS[f]].ravel().tolist(), fill=fill)
            else:
                _draw_polygon(draw, cam, corners[b, _FACE_CORNERS[f]], fill)


def _agent_boxes(
    agent_type: str,
    x: float,
    y: float,
    h: float,
    length: float,
    width: float,
    height: float,
    colour: RGB,
    braking: bool = False,
) -> list[_Box]:
    """An agent as one or two boxes: cars get a glass cabin, people and riders a darker lower part; a
    braking vehicle a lit red band across its rear (wide enough to read at 64 px)."""
    c, s = math.cos(h), math.sin(h)
    lamps = []
    if braking:
        rear = -(length / 2 + 0.02)  # [m] the band's centre, just behind the rear face
        lamps = [
            _Box(x + c * rear, y + s * rear, h, 0.06, 0.92 * width, BRAKE_BAR[0] * height,
                 BRAKE_BAR[1] * height, BRAKE_LIGHT, lit=True)
        ]  # fmt: skip
    if agent_type == "vehicle" and length <= TRUCK_LENGTH_M:
        back = -0.08 * length  # [m] cabin sits a little behind the centre
        return [
            _Box(x, y, h, length, width, 0.0, 0.55 * height, colour),
            _Box(x + c * back, y + s * back, h, 0.5 * length, 0.88 * width, 0.55 * height, height, GLASS),
            *lamps,
        ]
    if agent_type in ("pedestrian", "bicycle"):
        lower = DARK if agent_type == "bicycle" else (60, 60, 90)
        return [
            _Box(x, y, h, length, width, 0.0, 0.5 * height, lower),
            _Box(x, y, h, min(length, 0.6), min(width, 0.6), 0.5 * height, height, colour),
        ]
    return [_Box(x, y, h, length, width, 0.0, height, colour), *lamps]


def _light_boxes(lt: LightMarker) -> list[_Box]:
    """An overhead signal: a pole at the lane's right edge, an arm, and a lamp over the lane."""
    c, s = math.cos(lt.heading), math.sin(lt.heading)
    left = np.array([-s, c])
    base = np.array([lt.x, lt.y])
    pole = base - left * (lt.lane_width / 2.0 + 0.6)
    lamp = base + left * lt.lamp_offset
    arm_mid = (pole + lamp) / 2.0
    arm_len = float(np.linalg.norm(lamp - pole)) + 0.3
    return [
        _Box(*pole, lt.heading, 0.2, 0.2, 0.0, LAMP_TOP_M, DARK),
        _Box(*arm_mid, lt.heading + math.pi / 2.0, arm_len, 0.12, LAMP_TOP_M - 0.15, LAMP_TOP_M, DARK),
        _Box(*lamp, lt.heading, 0.6, 0.8, LAMP_BOTTOM_M, LAMP_TOP_M, LIGHT_COLOURS[lt.red], lit=True),
    ]


def _object_groups(
    scene: Scene, lights: list[LightMarker], cam: _Pinhole
) -> list[tuple[float, int, list[_Box]]]:
    """(distance from the camera [m], tie-break, boxes) for every agent and signal in range."""
    origin = ego_origin(scene.ego)
    groups = []
    for i, agent in enumerate(scene.agents):
        state = agent.state_at_frame(0)
        if state is None:
            continue
        x, y, h = global_to_local(np.array(state[:3]), origin).tolist()
        default = (
            TRUCK_HEIGHT_M
            if agent.type == "vehicle" and agent.length > TRUCK_LENGTH_M
            else DEFAULT_HEIGHTS[agent.type]
        )
        height = agent.height or default
        colour = agent_colour(agent.id, agent.type)
        boxes = _agent_boxes(agent.type, x, y, h, agent.length, agent.width, height, colour, agent.braking)
        groups.append((x, y, i, boxes))
    for j, lt in enumerate(lights):
        groups.append((lt.x, lt.y, len(scene.agents) + j, _light_boxes(lt)))
    out = []
    for x, y, order, boxes in groups:
        dist = math.hypot(x - cam.position[0], y - cam.position[1])
        if dist <= FAR_M:
            out.append((dist, order, boxes))
    return sorted(out, key=lambda g: (-g[0], g[1]))


# -------------------------------------------------------------------------------------- plans ---


def _draw_plans(
    draw: ImageDraw.ImageDraw, cam: _Pinhole, plans: dict[str, np.ndarray], width_px: int
) -> None:
    """Plans as lines on the ground from the rear axle through each pose, with a dot per pose."""
    colours = plan_colours(list(plans))
    for name, poses in plans.items():
        pts = _ground_z(np.concatenate([np.zeros((1, 2)), np.asarray(poses, dtype=np.float64)[:, :2]]), 0.05)
        camera_pts = cam.to_camera(pts)
        for a, b in zip(camera_pts[:-1], camera_pts[1:]):
            seg = _clip_segment(a, b)
            if seg is not None:
                draw.line(cam.project(np.stack(seg)).ravel().tolist(), fill=colours[name], width=width_px)
        for p in camera_pts[1:]:
            if p[2] >= NEAR_M:
                u, v = cam.project(p).tolist()
                r = width_px * 1.2
                draw.ellipse([u - r, v - r, u + r, v + r], fill=colours[name])


# ------------------------------------------------------------------------------------- render ---


@lru_cache(maxsize=8)
def _sky_and_ground(width: int, height: int, horizon: float) -> Image.Image:
    """Background at drawing resolution: a vertical sky gradient above the horizon, grass below."""
    rows = np.arange(height, dtype=np.float64)[:, None]
    t = np.clip(rows / max(horizon, 1.0), 0.0, 1.0)  # 0 at the top, 1 at the horizon
    sky = np.asarray(SKY_TOP) * (1 - t) + np.asarray(SKY_HORIZON) * t  # (H, 3)
    col = np.where(rows >= horizon, np.asarray(GROUND, dtype=np.float64), sky)
    img = np.broadcast_to(np.round(col)[:, None, :], (height, width, 3)).astype(np.uint8)
    return Image.fromarray(img, "RGB")


def render_camera(
    scene: Scene, config: CameraConfig, plans: dict[str, np.ndarray] | None = None
) -> Image.Image:
    """The ego's front camera at t = 0 as an RGB image of config.width × config.height.

    `plans` (name -> (8, 3) local poses) are drawn on top, in the colours the BEV legend uses."""
    s = config.supersample
    cam = _Pinhole.from_config(config)
    img = _sky_and_ground(config.width * s, config.height * s, round(cam.horizon_row())).copy()
    draw = ImageDraw.Draw(img)
    lights = _draw_ground(draw, cam, scene, config)
    _draw_boxes(draw, cam, [box for _, _, boxes in _object_groups(scene, lights, cam) for box in boxes])
    if plans:
        _draw_plans(draw, cam, plans, width_px=max(1, round(config.width / 112)) * s)
    return img.reduce(s) if s > 1 else img
