"""A parametric furniture generator: varied, watertight, deterministic per (seed, category, index).

Each piece is a union of simple parts (boxes, cylinders, tapered legs) computed with manifold3d,
so the result is one closed 2-manifold (the evaluation's inside/outside test needs that). Built
z-up in metres with the front facing -y, then saved as a y-up GLB like any downloaded asset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import manifold3d as mf
import numpy as np
import trimesh

from lrm_dist.assets.categories import check_categories
from lrm_dist.geometry.frame import Y_UP_TO_Z_UP

WOODS = [(0.55, 0.36, 0.20), (0.72, 0.53, 0.34), (0.35, 0.22, 0.12), (0.85, 0.78, 0.66), (0.18, 0.18, 0.18), (0.92, 0.92, 0.90)]
OVERLAP = 0.002
"""Parts grow by 1-1.5x this (metres) so touching parts overlap and union into one body; the
per-part jitter keeps formerly coplanar faces apart, so the union has no coincident vertices."""

FABRICS = [(0.20, 0.30, 0.55), (0.55, 0.15, 0.15), (0.45, 0.50, 0.42), (0.75, 0.72, 0.65), (0.30, 0.30, 0.32), (0.80, 0.60, 0.30)]


@dataclass
class PartBuilder:
    """Collects parts (each tagged with a material slot) and unions them into one mesh."""

    rng: np.random.Generator
    parts: list[tuple[mf.Manifold, int]] = field(default_factory=list)

    def _grow(self) -> float:
        return OVERLAP * (1.0 + 0.5 * len(self.parts) / (len(self.parts) + 7.0))

    def box(self, center, size, material: int = 0) -> None:
        grow = self._grow()
        part = mf.Manifold.cube([float(v) + grow for v in size], True).translate(list(map(float, center)))
        self.parts.append((part.as_original(), material))

    def cylinder(self, center, radius: float, height: float, radius_top: float | None = None, material: int = 0,
                 segments: int = 24) -> None:
        """A z-axis cylinder (or frustum) whose centre is ``center``."""
        top = radius if radius_top is None else radius_top
        grow = self._grow()
        part = mf.Manifold.cylinder(float(height) + grow, float(radius) + grow / 2, float(top) + grow / 2, segments, True)
        self.parts.append((part.translate(list(map(float, center))).as_original(), material))

    def add(self, part: mf.Manifold, material: int = 0) -> None:
        """Any closed part, already placed."""
        self.parts.append((part.as_original(), material))

    def rod(self, start, end, radius: float, material: int = 0, segments: int = 16) -> None:
        """A capsule from ``start`` to ``end`` (the hull of two balls): a turned leg, post or rail at any angle."""
        ball = mf.Manifold.sphere(float(radius) + self._grow() / 2, segments)
        ends = [ball.translate(list(map(float, p))) for p in (start, end)]
        self.add(mf.Manifold.batch_hull(ends), material)

    def rounded_box(self, center, size, radius: float, tilt: float = 0.0, material: int = 0, segments: int = 12) -> None:
        """A box with rounded edges and corners (the hull of eight balls), its top leaning ``tilt`` degrees to +y."""
        r = min(float(radius), *(float(v) / 2 - 1e-3 for v in size))
        half = [float(v) / 2 - r for v in size]
        ball = mf.Manifold.sphere(r + self._grow() / 2, segments)
        corners = [ball.translate([sx * half[0], sy * half[1], sz * half[2]]) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
        self.add(mf.Manifold.batch_hull(corners).rotate([-float(tilt), 0.0, 0.0]).translate(list(map(float, center))), material)

    def mesh(self, colors: bool) -> trimesh.Trimesh:
        union = mf.Manifold.batch_boolean([p for p, _ in self.parts], mf.OpType.Add)
        gl = union.to_mesh()
        verts = np.asarray(gl.vert_properties)[:, :3].astype(np.float64)
        faces = np.asarray(gl.tri_verts).astype(np.int64)
        mesh = trimesh.Trimesh(verts, faces, process=False)
        if colors:
            palette = [self.rng.choice(len(WOODS)), self.rng.choice(len(FABRICS))]
            rgb = [np.array(WOODS[palette[0]]), np.array(FABRICS[palette[1]])]
            material_of = {p.original_id(): m for p, m in self.parts}
            run_index, run_ids = np.asarray(gl.run_index), np.asarray(gl.run_original_id)
            face_rgb = np.zeros((len(faces), 3))
            for i, oid in enumerate(run_ids):
                face_rgb[run_index[i] // 3 : run_index[i + 1] // 3] = rgb[material_of.get(int(oid), 0)]
            if len(mesh.faces) == len(face_rgb):  # process=True keeps faces; guard anyway
                mesh.visual.face_colors = np.c_[(face_rgb * 255).round(), np.full(len(faces), 255)].astype(np.uint8)
        return mesh


def _legs(b: PartBuilder, xs: float, ys: float, height: float, style: str, thickness: float, count: int = 4) -> None:
    """Legs under a rectangle of half-size (xs, ys), floor to ``height``."""
    if count == 3:
        corners = [(xs * np.cos(a), ys * np.sin(a)) for a in np.deg2rad([90, 210, 330])]
    else:
        corners = [(sx * xs, sy * ys) for sx in (-1, 1) for sy in (-1, 1)]
    for x, y in corners:
        if style == "square":
            b.box((x, y, height / 2), (thickness, thickness, height))
        elif style == "tapered":
            b.cylinder((x, y, height / 2), thickness * 0.35, height, radius_top=thickness * 0.6)
        else:
            b.cylinder((x, y, height / 2), thickness / 2, height)


def _table(b: PartBuilder) -> None:
    r = b.rng
    height = r.uniform(0.45, 0.8)
    top_t = r.uniform(0.025, 0.05)
    kind = r.choice(["rect", "round", "pedestal", "desk"], p=[0.4, 0.2, 0.2, 0.2])
    if kind in ("round", "pedestal"):
        radius = r.uniform(0.35, 0.6)
        b.cylinder((0, 0, height - top_t / 2), radius, top_t, segments=48)
        if kind == "pedestal":
            b.cylinder((0, 0, (height - top_t) / 2), r.uniform(0.04, 0.08), height - top_t)
            b.cylinder((0, 0, 0.02), radius * r.uniform(0.4, 0.6), 0.04, segments=32)
        else:
            legs = int(r.choice([3, 4]))
            _legs(b, radius * 0.6, radius * 0.6, height - top_t, str(r.choice(["round", "tapered"])), 0.05, legs)
        return
    w, d = r.uniform(0.8, 1.8), r.uniform(0.5, 0.95)
    b.box((0, 0, height - top_t / 2), (w, d, top_t))
    leg_t = r.uniform(0.04, 0.08)
    inset = leg_t / 2 + r.uniform(0.0, 0.05)
    _legs(b, w / 2 - inset, d / 2 - inset, height - top_t, str(r.choice(["square", "round", "tapered"])), leg_t)
    if r.random() < 0.6:  # apron under the top
        apron_h = r.uniform(0.05, 0.1)
        z = height - top_t - apron_h / 2
        b.box((0, -(d / 2 - inset), z), (w - 2 * inset, 0.02, apron_h))
        b.box((0, d / 2 - inset, z), (w - 2 * inset, 0.02, apron_h))
    if kind == "desk":  # a drawer block on one side
        side = r.choice([-1, 1])
        bw = r.uniform(0.3, 0.45)
        b.box((side * (w / 2 - bw / 2), 0, (height - top_t) / 2), (bw, d * 0.9, height - top_t), material=0)
    elif r.random() < 0.4:  # a low shelf/stretcher
        b.box((0, 0, r.uniform(0.1, 0.2)), (w - 2 * inset, d - 2 * inset, 0.02))


def _chair(b: PartBuilder) -> None:
    r = b.rng
    kind = r.choice(["chair", "armchair", "stool"], p=[0.5, 0.25, 0.25])
    seat_h = r.uniform(0.42, 0.5) if kind != "stool" else r.uniform(0.45, 0.75)
    if kind == "stool" and r.random() < 0.5:
        radius = r.uniform(0.16, 0.22)
        b.cylinder((0, 0, seat_h - 0.025), radius, 0.05, material=1, segments=32)
        _legs(b, radius * 0.75, radius * 0.75, seat_h - 0.05, "round", 0.035, int(r.choice([3, 4])))
        b.cylinder((0, 0, seat_h * 0.35), radius * 0.8, 0.02, segments=32)  # foot ring as a disc
        return
    w, d = r.uniform(0.4, 0.55), r.uniform(0.4, 0.52)
    seat_t = r.uniform(0.04, 0.08)
    b.box((0, 0, seat_h - seat_t / 2), (w, d, seat_t), material=1)
    leg_t = r.uniform(0.03, 0.05)
    _legs(b, w / 2 - leg_t / 2, d / 2 - leg_t / 2, seat_h - seat_t, str(r.choice(["square", "round", "tapered"])), leg_t)
    if kind == "stool":
        return
    back_h = r.uniform(0.35, 0.55)
    back_style = r.choice(["panel", "slats", "frame"])
    y_back = d / 2 - 0.02
    z0 = seat_h
    if back_style == "panel":
        b.box((0, y_back, z0 + back_h / 2), (w, 0.04, back_h), material=1)
    else:
        for sx in (-1, 1):  # back posts
            b.box((sx * (w / 2 - leg_t / 2), y_back, z0 + back_h / 2), (leg_t, 0.04, back_h))
        b.box((0, y_back, z0 + back_h - 0.04), (w, 0.04, 0.08))
        if back_style == "slats":
            n = int(r.integers(2, 5))
            for x in np.linspace(-w / 2 + w / (n + 1), w / 2 - w / (n + 1), n):
                b.box((x, y_back, z0 + back_h / 2), (0.025, 0.03, back_h))
    if kind == "armchair":
        arm_h = r.uniform(0.18, 0.25)
        for sx in (-1, 1):
            b.box((sx * (w / 2 + 0.03), 0, z0 + arm_h), (0.06, d, 0.04), material=1)
            b.box((sx * (w / 2 + 0.03), -d / 2 + 0.03, z0 + arm_h / 2), (0.04, 0.04, arm_h))


def _bookshelf(b: PartBuilder) -> None:
    r = b.rng
    w, d, h = r.uniform(0.6, 1.4), r.uniform(0.25, 0.4), r.uniform(0.8, 2.0)
    t = r.uniform(0.018, 0.03)
    for sx in (-1, 1):
        b.box((sx * (w / 2 - t / 2), 0, h / 2), (t, d, h))
    b.box((0, 0, h - t / 2), (w, d, t))
    plinth = r.uniform(0.0, 0.08)
    b.box((0, 0, plinth + t / 2), (w, d, t))
    if plinth > 0.02:
        b.box((0, -d / 2 + t, plinth / 2), (w, t, plinth))
    shelves = int(r.integers(2, 7))
    for z in np.linspace(plinth + t, h - t, shelves + 1)[1:-1]:
        b.box((0, 0, z), (w - 2 * t + 0.002, d - 0.01, t))
    if r.random() < 0.7:  # closed back
        b.box((0, d / 2 - 0.005, h / 2), (w, 0.01, h))
    if r.random() < 0.3:  # doors on the lowest section
        door_h = (h - plinth) / (shelves + 1)
        b.box((0, -d / 2 + 0.01, plinth + door_h / 2 + t / 2), (w - 2 * t, 0.02, door_h), material=1)


def _bed(b: PartBuilder) -> None:
    r = b.rng
    w, length = r.uniform(0.9, 1.9), r.uniform(1.9, 2.2)
    bunk = r.random() < 0.2
    frame_h = r.uniform(0.2, 0.35)
    mattress_t = r.uniform(0.15, 0.25)
    post = 0.06
    levels = [frame_h] + ([frame_h + r.uniform(0.9, 1.1)] if bunk else [])
    for z in levels:
        b.box((0, 0, z - 0.04), (w, length, 0.08))
        b.box((0, 0.02, z + mattress_t / 2), (w - 0.04, length - 0.08, mattress_t), material=1)
        if r.random() < 0.8:  # pillow
            b.box((0, length / 2 - 0.25, z + mattress_t + 0.05), (w * 0.7, 0.3, 0.1), material=1)
    top = levels[-1] + mattress_t
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.box((sx * (w / 2 - post / 2), sy * (length / 2 - post / 2), (top + 0.3) / 2), (post, post, top + 0.3))
    head_h = r.uniform(0.5, 1.0) if not bunk else 0.3
    b.box((0, length / 2 - 0.03, levels[0] + head_h / 2), (w, 0.05, head_h + levels[0] * 0.5))
    if r.random() < 0.6:  # footboard
        foot_h = r.uniform(0.2, 0.45)
        b.box((0, -length / 2 + 0.03, levels[0] + foot_h / 2), (w, 0.05, foot_h))
    if bunk:  # a ladder on the side
        for x in (w / 2 - 0.1, w / 2 - 0.45):
            b.box((x, -length / 2 - 0.015, top / 2), (0.04, 0.04, top))
        for z in np.linspace(0.3, top - 0.2, 4):
            b.box((w / 2 - 0.275, -length / 2 - 0.015, z), (0.35, 0.03, 0.03))


def _sofa(b: PartBuilder) -> None:
    r = b.rng
    seats = int(r.integers(1, 5))
    seat_w = r.uniform(0.55, 0.7)
    w, d = seats * seat_w, r.uniform(0.8, 1.0)
    base_h, cushion_t = r.uniform(0.2, 0.3), r.uniform(0.12, 0.18)
    b.box((0, 0, base_h / 2 + 0.05), (w, d, base_h), material=1)
    _legs(b, w / 2 - 0.05, d / 2 - 0.05, 0.06, "square", 0.05)
    back_t = r.uniform(0.15, 0.25)
    for i in range(seats):
        x = -w / 2 + seat_w * (i + 0.5)
        b.box((x, -back_t / 2, base_h + 0.05 + cushion_t / 2), (seat_w - 0.02, d - back_t - 0.02, cushion_t), material=1)
    back_h = r.uniform(0.35, 0.5)
    b.box((0, d / 2 - back_t / 2, base_h + 0.05 + back_h / 2), (w, back_t, back_h), material=1)
    if r.random() < 0.8:  # arms
        arm_w, arm_h = r.uniform(0.1, 0.22), r.uniform(0.15, 0.3)
        for sx in (-1, 1):
            b.box((sx * (w / 2 + arm_w / 2), 0, (base_h + 0.05 + arm_h) / 2 + 0.03), (arm_w, d, base_h + arm_h), material=1)
    if seats >= 2 and r.random() < 0.35:  # L-shape: a chaise on one side
        side = r.choice([-1, 1])
        ext = r.uniform(0.6, 0.9)
        b.box((side * (w / 2 - seat_w / 2), -d / 2 - ext / 2 + 0.01, base_h / 2 + 0.05), (seat_w, ext, base_h), material=1)
        b.box((side * (w / 2 - seat_w / 2), -d / 2 - ext / 2, base_h + 0.05 + cushion_t / 2), (seat_w - 0.02, ext - 0.02, cushion_t), material=1)


_BUILDERS = {"table": _table, "chair": _chair, "bookshelf": _bookshelf, "bed": _bed, "sofa": _sofa}


STYLES = ("blocks", "shaped", "curved")
"""``blocks``: axis-aligned boxes and upright cylinders (this module); ``shaped``: the same categories
built differently (``procedural_shaped.py``: capsules at any angle, rounded and tilted parts); ``curved``:
a third construction (``procedural_curved.py``: turned, revolved and bent parts, extruded profiles)."""


def generate_furniture(category: str, index: int, seed: int = 0, colors: bool = True,
                       style: str = "blocks") -> trimesh.Trimesh:
    """One watertight piece of ``category`` (z up, metres, front facing -y), the same for (seed, index, style)."""
    check_categories([category])
    if style not in STYLES:
        raise ValueError(f"unknown procedural style {style!r}; choose one of {list(STYLES)}")
    if style == "shaped":
        from lrm_dist.assets.procedural_shaped import BUILDERS
    elif style == "curved":
        from lrm_dist.assets.procedural_curved import BUILDERS
    else:
        BUILDERS = _BUILDERS
    stream = [seed, sorted(_BUILDERS).index(category), index] + ([STYLES.index(style)] if style != "blocks" else [])
    builder = PartBuilder(np.random.default_rng(stream))
    BUILDERS[category](builder)
    return builder.mesh(colors)


def write_procedural_glb(mesh: trimesh.Trimesh, path: str | Path) -> None:
    """Save a z-up mesh as a y-up GLB (the glTF convention), like a downloaded asset."""
    out = mesh.copy()
    out.apply_transform(np.linalg.inv(Y_UP_TO_Z_UP))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.export(path, file_type="glb")
