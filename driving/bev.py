"""Bird's-eye view of a scene at t = 0, ego-centred with the ego heading up, and the side-by-side picture
(BEV + front camera + caption) that `elf-vla show-scene` writes.

Pixel (col, row) of a local point (x forward, y left) is (c − y·ppm, c − x·ppm) with c the image centre:
the ego's rear axle sits exactly at the centre. Agent and plan colours match the camera's.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import box as shapely_box

from driving.camera import CameraConfig, render_camera
from driving.geometry import box_corners, ego_origin, global_to_local, trajectory_local
from driving.render_common import (
    EGO_COLOUR,
    LIGHT_COLOURS,
    RGB,
    MapView,
    agent_colour,
    map_view,
    plan_colours,
)
from driving.scene import EGO_LENGTH, EGO_REAR_AXLE_TO_CENTER, EGO_WIDTH, Scene

BACKGROUND: RGB = (28, 30, 34)
SURFACE_COLOURS: dict[str, RGB] = {
    "carpark": (72, 64, 84),
    "roadblock": (66, 68, 74),
    "intersection": (80, 80, 86),
    "connector": (74, 76, 82),
}
ROUTE_FILL: RGB = (48, 72, 112)
CENTERLINE: RGB = (105, 110, 120)
ROUTE_CENTERLINE: RGB = (120, 170, 255)
MARKING_COLOURS: dict[str, RGB] = {
    "dashed": (200, 200, 200),
    "solid": (200, 200, 200),
    "centre": (230, 185, 40),
    "stop": (240, 240, 240),
}
AGENT_OUTLINE: RGB = (235, 235, 235)  # every box stands out from the dark map
SMALL_PPM = 4.0  # [drawing px/m] below this, outlines and the ego's nose would cover the boxes: left out
TRAIL_FRAMES = 6  # agent future trail: 6 frames × 0.5 s = 3 s
SUPERSAMPLE = 2
CAPTION_PX = 18  # [px] caption strip of show_scene_image


class _Frame:
    """Local metres -> pixels at drawing resolution (ego heading up, rear axle at the centre)."""

    def __init__(self, size: int, meters: float) -> None:
        self.ppm = size / meters  # [px/m]
        self.centre = size / 2.0
        self.unit = size / 224.0  # drawing px per output px of a 224 px image

    def width(self, px_at_224: float) -> int:
        """Line width in drawing px: `px_at_224` output px at 224 px, scaled with the image, >= 1."""
        return max(1, round(px_at_224 * self.unit))

    def px(self, points: np.ndarray) -> list[float]:
        """(N, 2) local points -> flat [col, row, col, row, ...]."""
        points = np.asarray(points, dtype=np.float64)
        cols = self.centre - points[:, 1] * self.ppm
        rows = self.centre - points[:, 0] * self.ppm
        return np.stack([cols, rows], axis=1).ravel().tolist()


def render_bev(
    scene: Scene,
    size_px: int = 224,
    meters: float = 80.0,
    plans: dict[str, np.ndarray] | None = None,
) -> Image.Image:
    """Top-down RGB view `meters` [m] across: map, route, lights, agents with 3 s trails, the ego, and
    `plans` (name -> (8, 3) local poses) with a legend (drawn when the image is >= 128 px)."""
    s = SUPERSAMPLE
    frame = _Frame(size_px * s, meters)
    img = Image.new("RGB", (size_px * s, size_px * s), BACKGROUND)
    draw = ImageDraw.Draw(img)
    half = meters / 2.0 * 1.05
    view = map_view(scene, shapely_box(-half, -half, half, half))
    _draw_map(draw, frame, view)
    _draw_agents(draw, frame, scene)
    _draw_ego(draw, frame)
    colours = plan_colours(list(plans or {}))
    for name, poses in (plans or {}).items():
        _draw_plan(draw, frame, np.asarray(poses, dtype=np.float64), colours[name])
    img = img.reduce(s)
    if size_px >= 128:
        _draw_scale_bar(ImageDraw.Draw(img), size_px, meters)
        if plans:
            _draw_legend(ImageDraw.Draw(img), colours)
    return img


def _draw_map(draw: ImageDraw.ImageDraw, frame: _Frame, view: MapView) -> None:
    for surface in view.surfaces:
        fill = ROUTE_FILL if surface.route else SURFACE_COLOURS[surface.kind]
        if surface.kind == "connector" and not surface.route:
            continue  # connectors off the route would hide the intersection; their centerlines show them
        for i, ring in enumerate(surface.rings):
            draw.polygon(frame.px(ring), fill=fill if i == 0 else BACKGROUND)
    for lane in view.lanes:
        draw.line(
            frame.px(lane.points), fill=ROUTE_CENTERLINE if lane.route else CENTERLINE, width=frame.width(1)
        )
    for marking in view.markings:
        width = frame.width(3 if marking.kind == "stop" else 1)
        draw.line(frame.px(marking.points), fill=MARKING_COLOURS[marking.kind], width=width)
    for lt in sorted(view.lights, key=lambda lt: lt.red):  # red on top where connectors overlap
        if len(lt.path) >= 2:
            draw.line(frame.px(lt.path), fill=LIGHT_COLOURS[lt.red], width=frame.width(3), joint="curve")


def _darker(colour: RGB, k: float = 0.55) -> RGB:
    return tuple(round(c * k) for c in colour)


def _draw_agents(draw: ImageDraw.ImageDraw, frame: _Frame, scene: Scene) -> None:
    """Trails first (under every box), then boxes with a line from the centre to the front."""
    origin = ego_origin(scene.ego)
    boxes = []
    for agent in scene.agents:
        states = [agent.state_at_frame(i) for i in range(TRAIL_FRAMES + 1)]
        if states[0] is None:
            continue
        trail = global_to_local(np.array([st[:3] for st in states if st is not None]), origin)
        colour = agent_colour(agent.id, agent.type)
        if len(trail) >= 2 and not agent.is_static:
            draw.line(frame.px(trail[:, :2]), fill=_darker(colour, 0.8), width=frame.width(1))
        boxes.append((trail[0], agent.length, agent.width, colour))
    for (x, y, h), length, width, colour in boxes:
        corners = box_corners(np.array(x), np.array(y), np.array(h), length, width)
        outline = AGENT_OUTLINE if frame.ppm >= SMALL_PPM else None
        draw.polygon(frame.px(corners), fill=colour, outline=outline, width=frame.width(1))
        nose = np.array([[x, y], [x + math.cos(h) * length / 2, y + math.sin(h) * length / 2]])
        draw.line(frame.px(nose), fill=_darker(colour, 0.35), width=frame.width(1))


def _draw_ego(draw: ImageDraw.ImageDraw, frame: _Frame) -> None:
    corners = box_corners(
        np.array(EGO_REAR_AXLE_TO_CENTER), np.array(0.0), np.array(0.0), EGO_LENGTH, EGO_WIDTH
    )
    if frame.ppm < SMALL_PPM:
        draw.polygon(frame.px(corners), fill=EGO_COLOUR)
        return
    draw.polygon(frame.px(corners), fill=EGO_COLOUR, outline=(20, 20, 20))
    front = EGO_REAR_AXLE_TO_CENTER + EGO_LENGTH / 2
    nose = np.array([[front - 0.2, 0.0], [front - 1.6, EGO_WIDTH * 0.35], [front - 1.6, -EGO_WIDTH * 0.35]])
    draw.polygon(frame.px(nose), fill=(20, 20, 20))


def _draw_plan(draw: ImageDraw.ImageDraw, frame: _Frame, poses: np.ndarray, colour: RGB) -> None:
    """A plan from the rear axle through its poses, with a dot per pose."""
    line = np.concatenate([np.zeros((1, 2)), poses[:, :2]])
    draw.line(frame.px(line), fill=colour, width=frame.width(2), joint="curve")
    r = 1.8 * frame.unit
    for col, row in np.asarray(frame.px(poses[:, :2])).reshape(-1, 2).tolist():
        draw.ellipse([col - r, row - r, col + r, row + r], fill=colour)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _draw_legend(draw: ImageDraw.ImageDraw, colours: dict[str, RGB]) -> None:
    font = _font(10)
    width = max(draw.textlength(name, font=font) for name in colours) + 22
    draw.rectangle([2, 2, 4 + width, 4 + 12 * len(colours)], fill=(15, 15, 18))
    for i, (name, colour) in enumerate(colours.items()):
        y = 4 + 12 * i
        draw.rectangle([5, y + 3, 16, y + 8], fill=colour)
        draw.text((20, y), name, fill=(235, 235, 235), font=font)


def _draw_scale_bar(draw: ImageDraw.ImageDraw, size_px: int, meters: float) -> None:
    """A 10 m bar in the bottom-left corner."""
    length = 10.0 * size_px / meters  # [px]
    y = size_px - 6
    draw.line([4, y, 4 + length, y], fill=(220, 220, 220), width=2)
    draw.text((6 + length, y - 9), "10 m", fill=(220, 220, 220), font=_font(9))


# --------------------------------------------------------------------------------- show scene ---


def scene_plans(scene: Scene, plan: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The plans worth showing, local (N, 3): the expert's, the scene's own trajectory, an explicit one."""
    plans = {}
    if scene.sample is not None:
        plans["expert"] = trajectory_local(scene.sample.expert, scene.ego)
    if scene.trajectory is not None:
        plans["trajectory"] = trajectory_local(scene.trajectory, scene.ego)
    if plan is not None:
        plans["plan"] = np.asarray(plan, dtype=np.float64)
    return plans


def show_scene_image(scene: Scene, plan: np.ndarray | None = None, size: int = 224) -> Image.Image:
    """BEV (left) and front camera (right), each `size` px, with the expert plan, the scene's
    trajectory and `plan` (local (8, 3) poses) on both, and a caption: id, family, command, speed."""
    plans = scene_plans(scene, plan)
    bev = render_bev(scene, size_px=size, plans=plans)
    cam = render_camera(scene, CameraConfig(width=size, height=size), plans=plans)
    out = Image.new("RGB", (2 * size + 4, size + CAPTION_PX), (15, 15, 18))
    out.paste(bev, (0, 0))
    out.paste(cam, (size + 4, 0))
    ImageDraw.Draw(out).text((4, size + 3), _caption(scene), fill=(235, 235, 235), font=_font(11))
    return out


def _caption(scene: Scene) -> str:
    speed = math.hypot(scene.ego.vx, scene.ego.vy)
    family = scene.sample.family if scene.sample else "-"
    command = scene.sample.command if scene.sample else "-"
    return f"{scene.id or '(no id)'} | {family} | command: {command} | {speed:.1f} m/s"
