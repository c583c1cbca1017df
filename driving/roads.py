"""Road geometry for the synthetic scene generator: arc-length paths, multi-lane roads, intersections.

Everything is built from a *reference line* sampled every metre; lanes are offsets of it, so a lane's
centerline, its boundaries and the roadblock's outline share the same cross-sections and adjacent
polygons meet without slivers. Simplifications (and why):
* Roads are a reference line with a smooth curvature profile (piecewise-constant curvature, blended by a
  moving average): enough for curves, S-bends and lane tapers; no elevation, no superelevation.
* Intersections are axis-aligned with 3 or 4 arms at right angles. A turn connector is a straight part
  plus a symmetric 90° turn whose curvature rises and falls smoothly (1 - cos profile), so a tracked plan
  has no yaw-acceleration spike at the turn's ends (NAVSIM's comfort checks yaw acceleration).
* Written polylines are simplified to 1 cm (straight lanes become two points); the scorer densifies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Point, Polygon, box

DS = 1.0  # [m] spacing of reference-line samples


# ------------------------------------------------------------------------------------------ paths ---


class Path:
    """A polyline with arc length s [m]; poses beyond its ends are extrapolated along the end tangents."""

    def __init__(self, xy: np.ndarray) -> None:
        xy = densify(np.asarray(xy, dtype=np.float64), DS)
        keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-6])
        self.xy = xy[keep]
        seg = np.diff(self.xy, axis=0)
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        seg_h = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        # vertex heading: mean of the adjacent segments' headings
        self.heading = np.concatenate([seg_h[:1], 0.5 * (seg_h[1:] + seg_h[:-1]), seg_h[-1:]])
        self.length = float(self.s[-1])

    def pose(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, heading) at arc lengths `s` (any shape)."""
        s = np.asarray(s, dtype=np.float64)
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        h = np.interp(s, self.s, self.heading)
        before, after = s < 0.0, s > self.length
        x = np.where(before, self.xy[0, 0] + s * np.cos(self.heading[0]), x)
        y = np.where(before, self.xy[0, 1] + s * np.sin(self.heading[0]), y)
        extra = s - self.length
        x = np.where(after, self.xy[-1, 0] + extra * np.cos(self.heading[-1]), x)
        y = np.where(after, self.xy[-1, 1] + extra * np.sin(self.heading[-1]), y)
        return x, y, h

    def point(self, s: np.ndarray, d: np.ndarray | float = 0.0) -> np.ndarray:
        """(..., 2) points at arc length s and lateral offset d (left positive) [m]."""
        x, y, h = self.pose(s)
        return np.stack([x - np.sin(h) * d, y + np.cos(h) * d], axis=-1)

    def curvature(self, s: np.ndarray) -> np.ndarray:
        """[1/m] signed curvature (left positive) at s."""
        k = np.gradient(self.heading, self.s) if len(self.s) > 2 else np.zeros_like(self.s)
        return np.interp(np.asarray(s, dtype=np.float64), self.s, k)

    def project(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length s and signed lateral offset d (left positive) of points (any shape; NaN stays
        NaN). Coarse-to-fine: nearest vertex of every 8th, then the exact segment near it."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        shape = x.shape
        p = np.stack([x.ravel(), y.ravel()], axis=-1)
        n_seg = len(self.seg_len)
        coarse = self.xy[::8]
        near = np.argmin(((p[:, None, :] - coarse[None]) ** 2).sum(-1), axis=1) * 8  # (M,)
        k = np.clip(near[:, None] + np.arange(-10, 11)[None], 0, n_seg - 1)  # (M, 21) segments
        a, ab = self.xy[k], self.xy[k + 1] - self.xy[k]
        ap = p[:, None, :] - a
        seg2 = self.seg_len[k] ** 2
        t = (ap * ab).sum(-1) / seg2
        lo = np.where(k == 0, -np.inf, 0.0)  # extrapolate before the start ...
        hi = np.where(k == n_seg - 1, np.inf, 1.0)  # ... and after the end
        t = np.clip(t, lo, hi)
        d2 = ((ap - t[..., None] * ab) ** 2).sum(-1)
        best = np.argmin(np.nan_to_num(d2, nan=np.inf), axis=1)
        rows = np.arange(len(best))
        kb, tb = k[rows, best], t[rows, best]
        s = self.s[kb] + tb * self.seg_len[kb]
        abb, apb = ab[rows, best], ap[rows, best]
        d = (abb[:, 0] * apb[:, 1] - abb[:, 1] * apb[:, 0]) / self.seg_len[kb]
        return s.reshape(shape), d.reshape(shape)


def join_paths(parts: list[np.ndarray]) -> Path:
    """One Path through consecutive polylines (shared joint points are dropped)."""
    out = [parts[0]]
    for p in parts[1:]:
        out.append(p[1:] if np.hypot(*(p[0] - out[-1][-1])) < 1e-3 else p)
    return Path(np.concatenate(out, axis=0))


def reference_line(
    start: tuple[float, float, float], pieces: list[tuple[float, float]], blend_m: float = 20.0
) -> np.ndarray:
    """(N, 2) samples every DS m of a line from `start` (x, y, heading) made of `pieces`
    (length [m], curvature [1/m]); curvature steps are blended over `blend_m` by a moving average."""
    kappa = np.concatenate([np.full(max(1, int(round(length / DS))), k) for length, k in pieces])
    w = max(1, int(round(blend_m / DS)))
    padded = np.concatenate([np.full(w, kappa[0]), kappa, np.full(w, kappa[-1])])
    kappa = np.convolve(padded, np.ones(w) / w, mode="same")[w:-w]
    heading = start[2] + np.concatenate([[0.0], np.cumsum(kappa[:-1] * DS)])
    x = start[0] + np.concatenate([[0.0], np.cumsum(np.cos(heading[:-1]) * DS)])
    y = start[1] + np.concatenate([[0.0], np.cumsum(np.sin(heading[:-1]) * DS)])
    return np.stack([x, y], axis=-1)


def densify(xy: np.ndarray, step: float = DS) -> np.ndarray:
    """(N, 2) polyline -> points at most `step` apart, keeping every vertex (vectorised)."""
    xy = np.asarray(xy, dtype=np.float64)
    seg = np.diff(xy, axis=0)
    n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step).astype(int))
    idx = np.repeat(np.arange(len(seg)), n)
    frac = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n)
    return np.concatenate([xy[idx] + frac[:, None] * seg[idx], xy[-1:]], axis=0)


def _normals(ref: np.ndarray) -> np.ndarray:
    """(N, 2) unit left normals at the vertices of a polyline (mean heading of adjacent segments)."""
    seg = np.diff(ref, axis=0)
    h = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
    hv = np.concatenate([h[:1], 0.5 * (h[1:] + h[:-1]), h[-1:]])
    return np.stack([-np.sin(hv), np.cos(hv)], axis=-1)


def _offset(ref: np.ndarray, d: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """Points of the reference polyline shifted by d [m] (left positive) along its normals."""
    normals = _normals(ref) if normals is None else normals
    return ref + normals * np.asarray(d)[:, None]


def _simplified(xy: np.ndarray) -> list[list[float]]:
    """Rounded to mm; interior points of straight runs dropped, curved runs kept every 2 samples (the
    chord error at 2 m spacing and R >= 25 m is < 2 cm)."""
    xy = np.asarray(xy)
    if len(xy) > 2:
        seg = np.diff(xy, axis=0)
        h = np.arctan2(seg[:, 1], seg[:, 0])
        turn = np.abs(np.angle(np.exp(1j * (h[1:] - h[:-1]))))
        curved = np.concatenate([[False], turn > 1e-6, [False]])
        keep = curved & (np.arange(len(xy)) % 2 == 0)
        keep |= np.concatenate([[True], curved[1:] != curved[:-1]])
        keep |= np.concatenate([curved[:-1] != curved[1:], [True]])
        xy = xy[keep]
    return np.round(xy, 3).tolist()


def _ring(left: np.ndarray, right: np.ndarray) -> list[list[float]]:
    """A polygon from its left and right boundaries (both in driving direction)."""
    return _simplified(left) + _simplified(right[::-1])


# ------------------------------------------------------------------------------------------ roads ---


@dataclass
class LaneSpec:
    """One lane along a reference line: per-sample centre offset and width [m], where it exists."""

    name: str  # e.g. "f0" (forward, leftmost) or "b1"
    offset: np.ndarray  # (N,) [m] left of the reference line
    width: np.ndarray  # (N,) [m]
    speed_limit: float  # [m/s]
    forward: bool = True  # travels along the reference line's direction
    first: int = 0  # first reference sample where the lane exists
    last: int = -1  # last one (inclusive; -1 = the end)
    merges_into: str | None = None  # lane name its last piece continues into


@dataclass
class RoadParts:
    """What a road builder hands to a scenario."""

    roadblocks: list[dict]  # JSON-ready roadblocks (SCENE_FORMAT.md)
    fwd_ids: list[str]  # forward roadblock ids in driving order
    lane_ids: dict[str, list[str]]  # lane name -> its lane ids in driving order
    lane_xy: dict[str, np.ndarray]  # lane name -> full-resolution centerline in driving order
    fwd_polygon: list[np.ndarray] = field(default_factory=list)  # roadblock outlines (for the expert)


def build_road(prefix: str, ref: np.ndarray, lanes: list[LaneSpec], cuts: list[int]) -> RoadParts:
    """Roadblocks between consecutive reference indices in `cuts` (first 0, last N-1). Forward and
    backward lanes get separate roadblocks; lanes link to their continuation in the next roadblock."""
    n = len(ref)
    nrm = _normals(ref)
    blocks: dict[tuple[bool, int], list[dict]] = {}
    lane_ids: dict[str, list[str]] = {}
    lane_xy: dict[str, np.ndarray] = {}
    edges: dict[tuple[bool, int], tuple[np.ndarray, np.ndarray]] = {}
    for spec in lanes:
        last = n - 1 if spec.last < 0 else spec.last
        lane_ids[spec.name] = []
        centre = _offset(ref, spec.offset, nrm)
        left_b, right_b = (
            _offset(ref, spec.offset + spec.width / 2, nrm),
            _offset(ref, spec.offset - spec.width / 2, nrm),
        )
        full = centre[spec.first : last + 1]
        lane_xy[spec.name] = full if spec.forward else full[::-1]
        for k in range(len(cuts) - 1):
            a, b = max(cuts[k], spec.first), min(cuts[k + 1], last)
            if b - a < 1:
                continue
            sl = slice(a, b + 1)
            cl, lb, rb = centre[sl], left_b[sl], right_b[sl]
            if not spec.forward:
                cl, lb, rb = cl[::-1], rb[::-1], lb[::-1]
            lane_id = f"{prefix}{'f' if spec.forward else 'b'}{k}_{spec.name}"
            lane_ids[spec.name].append(lane_id)
            lane = {
                "id": lane_id,
                "centerline": _simplified(cl),
                "polygon": _ring(lb, rb),
                "speed_limit_mps": spec.speed_limit,
            }
            blocks.setdefault((spec.forward, k), []).append(lane)
            lo = np.minimum(spec.offset - spec.width / 2, 1e9)[sl]
            hi = (spec.offset + spec.width / 2)[sl]
            prev = edges.get((spec.forward, k))
            edges[(spec.forward, k)] = (
                (hi, lo) if prev is None else (np.maximum(prev[0], hi), np.minimum(prev[1], lo))
            )
    for spec in lanes:
        if not spec.forward:
            lane_ids[spec.name].reverse()  # driving order
    # lane links: a lane continues as the same-named lane (or its merge target) in the next block
    successor: dict[str, str] = {}
    for spec in lanes:
        ids = lane_ids[spec.name]
        for a, b in zip(ids[:-1], ids[1:]):
            successor[a] = b
        if spec.merges_into and ids:
            tgt = next(
                (
                    i
                    for i in lane_ids[spec.merges_into]
                    if _block_index(i) == _block_index(ids[-1]) + (1 if spec.forward else -1)
                ),
                None,
            )
            if tgt:
                successor[ids[-1]] = tgt
    roadblocks, fwd_ids, outlines = [], [], []
    keys = sorted(blocks, key=lambda kk: (not kk[0], kk[1] if kk[0] else -kk[1]))
    for fwd, k in keys:
        rb_id = f"{prefix}{'F' if fwd else 'B'}{k}"
        lanes_k = blocks[(fwd, k)]
        for ln in lanes_k:
            if ln["id"] in successor:
                ln["outgoing"] = [successor[ln["id"]]]
        nxt = (fwd, k + 1) if fwd else (fwd, k - 1)
        sl = slice(cuts[k], cuts[k + 1] + 1)
        hi, lo = edges[(fwd, k)]
        ring_l, ring_r = _offset(ref[sl], hi, nrm[sl]), _offset(ref[sl], lo, nrm[sl])
        poly = _ring(ring_l, ring_r)
        outgoing = [f"{prefix}{'F' if fwd else 'B'}{nxt[1]}"] if nxt in blocks else None
        roadblocks.append(
            {"id": rb_id, "lanes": lanes_k, "polygon": poly} | ({"outgoing": outgoing} if outgoing else {})
        )
        if fwd:
            fwd_ids.append(rb_id)
            outlines.append(np.asarray(poly))
    return RoadParts(roadblocks, fwd_ids, lane_ids, lane_xy, outlines)


def _block_index(lane_id: str) -> int:
    head = lane_id.split("_", 1)[0]
    return int(head.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def uniform_lanes(
    n: int, n_fwd: int, n_back: int, widths: list[float], speed_fwd: float, speed_back: float
) -> list[LaneSpec]:
    """Forward lanes right of the reference line (f0 next to it), backward lanes left of it."""
    specs = []
    edge = 0.0
    for i in range(n_fwd):
        w = widths[i]
        specs.append(LaneSpec(f"f{i}", np.full(n, -(edge + w / 2)), np.full(n, w), speed_fwd))
        edge += w
    edge = 0.0
    for j in range(n_back):
        w = widths[n_fwd + j]
        specs.append(LaneSpec(f"b{j}", np.full(n, edge + w / 2), np.full(n, w), speed_back, forward=False))
        edge += w
    return specs


def even_cuts(n: int, first_len: int, seg_len: int) -> list[int]:
    """Reference indices splitting N samples into roadblocks: one of `first_len`, then `seg_len` each."""
    cuts = [0, min(first_len, n - 1)]
    while cuts[-1] < n - 1:
        nxt = cuts[-1] + seg_len
        cuts.append(n - 1 if n - 1 - nxt < seg_len // 2 else nxt)
    return cuts


# ---------------------------------------------------------------------------------- intersections ---

ARM_DIRS = {"E": (1.0, 0.0), "N": (0.0, 1.0), "W": (-1.0, 0.0), "S": (0.0, -1.0)}
LEFT_OF = {"W": "N", "N": "E", "E": "S", "S": "W"}  # arriving from W (driving east), a left turn exits N
RIGHT_OF = {v: k for k, v in LEFT_OF.items()}
OPPOSITE = {"W": "E", "E": "W", "N": "S", "S": "N"}


def _turn_shape() -> tuple[np.ndarray, float]:
    """Unit-length symmetric 90° left turn: (M, 2) points and its displacement c (same in x and y)."""
    u = np.linspace(0.0, 1.0, 401)
    theta = (np.pi / 2) * (u - np.sin(2 * np.pi * u) / (2 * np.pi))  # curvature ∝ 1 - cos(2πu)
    du = u[1] - u[0]
    x = np.concatenate([[0.0], np.cumsum(0.5 * (np.cos(theta[1:]) + np.cos(theta[:-1])) * du)])
    y = np.concatenate([[0.0], np.cumsum(0.5 * (np.sin(theta[1:]) + np.sin(theta[:-1])) * du)])
    return np.stack([x, y], axis=-1), float(x[-1])


_TURN, _TURN_C = _turn_shape()


def connector_curve(start: np.ndarray, end: np.ndarray, turn: str) -> np.ndarray:
    """(N, 2) centerline from pose `start` (x, y, h) to point `end`: straight, or a straight part plus
    a symmetric 90° turn ('left' / 'right')."""
    h = start[2]
    c, s = np.cos(h), np.sin(h)
    dx = c * (end[0] - start[0]) + s * (end[1] - start[1])
    dy = -s * (end[0] - start[0]) + c * (end[1] - start[1])
    if turn == "straight":
        local = np.array([[0.0, 0.0], [dx, dy]])
    else:
        side = 1.0 if turn == "left" else -1.0
        size = min(dx, abs(dy))
        lead, tail = dx - size, abs(dy) - size
        curve = _TURN[::8] * (size / _TURN_C)
        curve = np.stack([curve[:, 0] + lead, side * curve[:, 1]], axis=-1)
        pieces = [np.array([[0.0, 0.0]]), curve, np.array([[dx, side * (size + tail)]])]
        local = np.concatenate(pieces, axis=0)
    return np.stack(
        [start[0] + c * local[:, 0] - s * local[:, 1], start[1] + s * local[:, 0] + c * local[:, 1]], -1
    )


@dataclass
class IntersectionParts:
    roadblocks: list[dict]
    connectors: list[dict]
    polygon: list[list[float]]
    arms: dict[str, RoadParts]
    lane_xy: dict[str, np.ndarray]  # lane id -> centerline in driving direction (arms and connectors)
    conn_id: dict[tuple[str, str, int], str]  # (from arm, to arm, in-lane index) -> connector lane id
    mouth: dict[str, float]  # arm -> distance of its mouth from the centre [m]


def build_intersection(
    arms: dict[str, tuple[int, float, float]],
    width: float,
    kerb_radius: float,
    approach_cut: float = 0.0,
) -> IntersectionParts:
    """A right-angle junction centred at the origin. `arms`: name -> (lanes per direction, arm length
    [m], speed limit [m/s]); W-E arms share a lane count, as do N-S arms. Arm 'W' (traffic from the
    west drives east) is split `approach_cut` m before its mouth into two roadblocks."""
    half = {
        "EW": max(arms[a][0] for a in arms if a in "EW") * width,
        "NS": max(arms[a][0] for a in arms if a in "NS") * width,
    }
    mouth = {a: (half["NS"] if a in "EW" else half["EW"]) + kerb_radius for a in arms}
    built: dict[str, RoadParts] = {}
    lane_xy: dict[str, np.ndarray] = {}
    for a, (n_lanes, length, limit) in arms.items():
        ux, uy = ARM_DIRS[a]
        far = np.array([ux, uy]) * (mouth[a] + length)
        near = np.array([ux, uy]) * mouth[a]
        ref = densify(np.stack([far, near]), DS)
        n = len(ref)
        specs = uniform_lanes(n, n_lanes, n_lanes, [width] * (2 * n_lanes), limit, limit)
        cut = int(round(approach_cut / DS)) if a == "W" and approach_cut > 0 else 0
        cuts = [0, n - 1 - cut, n - 1] if cut else [0, n - 1]
        parts = build_road(f"{a}", ref, specs, cuts)
        built[a] = parts
        for rb in parts.roadblocks:
            for lane in rb["lanes"]:
                lane_xy[lane["id"]] = densify(np.asarray(lane["centerline"]), DS)
    connectors, conn_id = _connectors(arms, built, width, lane_xy)
    all_blocks = [rb for a in arms for rb in built[a].roadblocks]
    return IntersectionParts(
        all_blocks, connectors, _junction_polygon(arms, half, kerb_radius), built, lane_xy, conn_id, mouth
    )


def _connectors(
    arms: dict[str, tuple[int, float, float]], built: dict[str, RoadParts], width: float, lane_xy: dict
) -> tuple[list[dict], dict[tuple[str, str, int], str]]:
    """Straight connectors lane i -> lane i, left turns from the leftmost and right turns from the
    rightmost lane; one connector roadblock per (from, to) arm pair."""
    groups: dict[tuple[str, str], list[dict]] = {}
    conn_id: dict[tuple[str, str, int], str] = {}
    ends: dict[str, list[str]] = {}
    for a in arms:
        n_lanes = arms[a][0]
        for i in range(n_lanes):
            in_lane = built[a].lane_ids[f"f{i}"][-1]
            moves = []
            if OPPOSITE[a] in arms and i < arms[OPPOSITE[a]][0]:
                moves.append((OPPOSITE[a], i, "straight"))
            if i == 0 and LEFT_OF[a] in arms:
                moves.append((LEFT_OF[a], 0, "left"))
            if i == n_lanes - 1 and RIGHT_OF[a] in arms:
                moves.append((RIGHT_OF[a], arms[RIGHT_OF[a]][0] - 1, "right"))
            for b, j, turn in moves:
                out_lane = built[b].lane_ids[f"b{j}"][0]
                p_in, p_out = lane_xy[in_lane], lane_xy[out_lane]
                h_in = np.arctan2(*(p_in[-1] - p_in[-2])[::-1])
                cl = connector_curve(np.array([*p_in[-1], h_in]), p_out[0], turn)
                cl = densify(cl, DS)
                lid = f"{a}{b}_{turn}{i}"
                conn_id[(a, b, i)] = lid
                lane_xy[lid] = cl
                nrm = _normals(cl)
                left, right = (
                    _offset(cl, np.full(len(cl), width / 2), nrm),
                    _offset(cl, np.full(len(cl), -width / 2), nrm),
                )
                groups.setdefault((a, b), []).append(
                    {
                        "id": lid,
                        "centerline": _simplified(cl),
                        "polygon": _ring(left, right),
                        "speed_limit_mps": arms[a][2],
                        "outgoing": [out_lane],
                    }
                )
                ends.setdefault(in_lane, []).append(lid)
    # the approach lanes' outgoing links point at their connectors
    for a in arms:
        for rb in built[a].roadblocks:
            if any(ln["id"] in ends for ln in rb["lanes"]):
                rb["outgoing"] = sorted({f"C{a}{b}" for (aa, b) in groups if aa == a})
                for ln in rb["lanes"]:
                    if ln["id"] in ends:
                        ln["outgoing"] = ends[ln["id"]]
    connectors = [
        {"id": f"C{a}{b}", "lanes": lanes, "outgoing": [built[b].roadblocks[_first_back(built[b])]["id"]]}
        for (a, b), lanes in sorted(groups.items())
    ]
    return connectors, conn_id


def _first_back(parts: RoadParts) -> int:
    """Index of the backward (outbound) roadblock nearest the mouth."""
    backs = [k for k, rb in enumerate(parts.roadblocks) if "B" in rb["id"]]
    return backs[0]


def _junction_polygon(
    arms: dict[str, tuple[int, float, float]], half: dict[str, float], rc: float
) -> list[list[float]]:
    """Central box, a mouth strip per arm, and each corner between two arms rounded by the kerb radius."""
    hx, hy = half["NS"], half["EW"]
    parts = [box(-hx, -hy, hx, hy)]
    ex = {a: (hx + rc) if a in arms else hx for a in "EW"}
    ny = {a: (hy + rc) if a in arms else hy for a in "NS"}
    parts.append(box(-ex["W"], -hy, ex["E"], hy))
    parts.append(box(-hx, -ny["S"], hx, ny["N"]))
    for a in "EW":
        for b in "NS":
            if a in arms and b in arms:
                sx, sy = (1.0 if a == "E" else -1.0), (1.0 if b == "N" else -1.0)
                corner = box(
                    min(sx * hx, sx * (hx + rc)),
                    min(sy * hy, sy * (hy + rc)),
                    max(sx * hx, sx * (hx + rc)),
                    max(sy * hy, sy * (hy + rc)),
                )
                disc = Point(sx * (hx + rc), sy * (hy + rc)).buffer(rc, quad_segs=12)
                parts.append(corner.difference(disc))
    poly = shapely.union_all(parts)
    poly = shapely.simplify(poly, 0.01)
    assert isinstance(poly, Polygon)
    return np.round(np.asarray(poly.exterior.coords)[:-1], 3).tolist()
