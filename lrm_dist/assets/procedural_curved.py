"""The procedural generator's third style, ``curved``: the five categories from turned and bent parts.

``blocks`` (``procedural.py``) assembles axis-aligned boxes and upright cylinders, ``shaped``
(``procedural_shaped.py``) capsules at any angle and rounded, tilted boards. This one uses neither: parts are
lathe-turned solids (a radius profile revolved about an axis: balustered legs, pedestals, round tops, drums),
ring sectors and arcs (barrel backs, crescent sofas, curved shelves), and 2D profiles extruded across the piece
(bent-plywood cantilevers, waterfall tables, scrolled sleigh ends, arched bookcases). A model trained on the
other two styles and scored on this one measures generalisation to a construction it never saw. Same contract:
z up, metres, front facing -y, one watertight body.
"""

from __future__ import annotations

import manifold3d as mf
import numpy as np

from lrm_dist.assets.procedural import PartBuilder

SEGMENTS = 32

# local (X, Y, Z) of a 2D profile extruded along Z -> world axes
_PROFILE_YZ = [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]  # profile in (y, z), width along x
_PROFILE_XZ = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0]]  # profile in (x, z), depth along y


def _polygon(points) -> mf.CrossSection:
    return mf.CrossSection([np.asarray(points, dtype=np.float64).tolist()], mf.FillRule.NonZero)


def _rounded(section: mf.CrossSection, radius: float, segments: int = 12) -> mf.CrossSection:
    """``section`` with its convex corners rounded to ``radius`` (shrink, then grow back)."""
    return section.offset(-radius, mf.JoinType.Round, 2.0, segments).offset(radius, mf.JoinType.Round, 2.0, segments)


def _smooth(points, rounds: int = 3) -> np.ndarray:
    """Chaikin corner cutting of an open polyline (ends kept): bends instead of corners."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(rounds):
        q, r = 0.75 * p[:-1] + 0.25 * p[1:], 0.25 * p[:-1] + 0.75 * p[1:]
        p = np.vstack([p[:1], np.stack([q, r], axis=1).reshape(-1, 2), p[-1:]])
    return p


def _strip(path, thickness: float) -> mf.CrossSection:
    """A bent strip of ``thickness`` along a smoothed 2D path (round ends and joints)."""
    disc = mf.CrossSection.circle(thickness / 2, 12)
    p = _smooth(path)
    pieces = [mf.CrossSection.batch_hull([disc.translate(a.tolist()), disc.translate(b.tolist())]) for a, b in zip(p[:-1], p[1:])]
    return mf.CrossSection.batch_boolean(pieces, mf.OpType.Add)


def _extruded(section: mf.CrossSection, width: float, frame: list[list[float]]) -> mf.Manifold:
    """``section`` extruded by ``width``, centred on its extrusion axis, turned into the world by ``frame``."""
    return mf.Manifold.extrude(section, width).translate([0.0, 0.0, -width / 2]).transform(frame)


def _turned(profile, at=(0.0, 0.0), tilt: tuple[float, float] = (0.0, 0.0)) -> mf.Manifold:
    """A lathe-turned part: ``profile`` is (radius, z) from bottom to top, revolved about a vertical axis at
    ``at``, leaning ``tilt`` degrees about x and y (about its foot)."""
    p = np.asarray(profile, dtype=np.float64)
    outline = [(0.0, p[0, 1]), *p.tolist(), (0.0, p[-1, 1])]
    part = mf.Manifold.revolve(_polygon(outline), SEGMENTS)
    return part.rotate([float(tilt[0]), float(tilt[1]), 0.0]).translate([float(at[0]), float(at[1]), 0.0])


def _baluster(height: float, radius: float, beads: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """A turned leg's profile: a foot, a swelling body with ``beads`` rings, a neck under the top."""
    zs = np.linspace(0.0, height, 9 + 2 * beads)
    swell = np.sin(np.linspace(0.0, np.pi, len(zs))) * rng.uniform(0.2, 0.5)
    ring = np.zeros(len(zs))
    ring[2 : len(zs) - 2 : 2][:beads] = rng.uniform(0.25, 0.45)
    r = radius * (0.7 + swell + ring)
    r[0], r[-1] = radius * 0.8, radius
    return list(zip(r.tolist(), zs.tolist()))


def _sector(r_in: float, r_out: float, z0: float, z1: float, degrees: float, facing: float = -90.0,
            centre=(0.0, 0.0), rounding: float = 0.0) -> mf.Manifold:
    """A ring sector about a vertical axis through ``centre``, ``degrees`` wide, its middle towards the angle
    ``facing`` (degrees from +x; -90 is the front); its (radius, z) outline rounded by ``rounding``."""
    section = _polygon([(r_in, z0), (r_out, z0), (r_out, z1), (r_in, z1)])
    if rounding > 0:
        section = _rounded(section, rounding)
    part = mf.Manifold.revolve(section, 3 * SEGMENTS, float(degrees))
    return part.rotate([0.0, 0.0, float(facing - degrees / 2)]).translate([float(centre[0]), float(centre[1]), 0.0])


def _disc(radius: float, z0: float, z1: float, edge: float, oval: float = 1.0) -> mf.Manifold:
    """A round (or oval: y scaled by ``oval``) slab from z0 to z1 with a rounded edge of radius ``edge``."""
    edge = min(edge, (z1 - z0) / 2 - 1e-3)
    # the outline spans both sides of the axis (revolve keeps x > 0), so only the outer edge is rounded
    section = _rounded(_polygon([(-radius, z0), (radius, z0), (radius, z1), (-radius, z1)]), edge, 8)
    return mf.Manifold.revolve(section, 2 * SEGMENTS).scale([1.0, float(oval), 1.0])


def _chair(b: PartBuilder) -> None:
    r = b.rng
    seat_h, w, d = r.uniform(0.42, 0.48), r.uniform(0.42, 0.55), r.uniform(0.4, 0.5)
    kind = r.choice(["cantilever", "tub", "spindle"])
    if kind == "cantilever":  # one bent plywood strip: back, seat, front leg, floor runner
        t, rake, back_h = r.uniform(0.02, 0.035), r.uniform(0.05, 0.14), r.uniform(0.35, 0.5)
        path = [(d / 2 + rake, seat_h + back_h), (d / 2, seat_h + 0.03), (-d / 2, seat_h),
                (-d / 2 - r.uniform(0.0, 0.06), seat_h * 0.5), (-d / 2 + r.uniform(-0.04, 0.04), t / 2), (d / 2, t / 2)]
        b.add(_extruded(_strip(path, t), w, _PROFILE_YZ))
        return
    if kind == "tub":  # a barrel shell round a drum seat, on a turned pedestal or four turned feet
        radius = w / 2 + 0.04
        b.add(_disc(radius - 0.02, seat_h - 0.12, seat_h, 0.04), material=1)
        shell = r.uniform(0.04, 0.07)
        b.add(_sector(radius - shell, radius, seat_h - 0.14, seat_h + r.uniform(0.22, 0.35), r.uniform(200, 280),
                      facing=90.0, rounding=shell / 2 - 0.002), material=1)
        if r.random() < 0.5:
            b.add(_turned([(radius * 0.8, 0.0), (radius * 0.8, 0.02), (0.04, 0.08), (0.03, seat_h * 0.6), (0.05, seat_h - 0.1)]))
        else:
            for a in np.deg2rad([45, 135, 225, 315]):
                b.add(_turned(_baluster(seat_h - 0.1, 0.02, 1, r), at=(0.7 * radius * np.cos(a), 0.7 * radius * np.sin(a))))
        return
    # spindle back: a round seat on splayed turned legs, turned spindles to a bent crest rail
    radius = w / 2
    oval = d / w
    seat_t = r.uniform(0.04, 0.06)
    b.add(_disc(radius, seat_h - seat_t, seat_h, seat_t / 3, oval=oval), material=1)
    splay = r.uniform(4, 10)
    for a in np.deg2rad([45, 135, 225, 315]):
        x, y = 0.65 * radius * np.cos(a), 0.65 * radius * np.sin(a) * oval
        tilt = (splay * np.sign(y), -splay * np.sign(x))  # feet pushed outwards
        b.add(_turned(_baluster(seat_h - seat_t + 0.03, 0.02, int(r.integers(1, 3)), r), at=(x, y), tilt=tilt))
    back_h, arc = r.uniform(0.3, 0.45), r.uniform(120, 170)
    crest = seat_h + back_h
    b.add(_sector(radius * 0.85 - 0.02, radius * 0.85 + 0.02, crest - 0.03, crest + 0.03, arc, facing=90.0).scale([1.0, oval, 1.0]))
    for a in np.deg2rad(np.linspace(90 - arc / 2 + 8, 90 + arc / 2 - 8, int(r.integers(4, 8)))):
        x, y = radius * 0.85 * np.cos(a), radius * 0.85 * np.sin(a) * oval
        b.add(_turned([(0.011, seat_h - 0.01), (0.014, seat_h + back_h * 0.4), (0.01, crest)], at=(x, y)))


def _table(b: PartBuilder) -> None:
    r = b.rng
    height, top_t = r.uniform(0.45, 0.78), r.uniform(0.025, 0.05)
    kind = r.choice(["pedestal", "turned-legs", "waterfall"])
    if kind == "waterfall":  # one bent slab: top flowing down to the floor at both ends
        w, d, t = r.uniform(0.8, 1.6), r.uniform(0.45, 0.9), r.uniform(0.03, 0.05)
        path = [(-w / 2, t / 2), (-w / 2, height - t / 2), (w / 2, height - t / 2), (w / 2, t / 2)]
        b.add(_extruded(_strip(path, t), d, _PROFILE_XZ))
        return
    radius, oval = r.uniform(0.35, 0.65), r.choice([1.0, r.uniform(0.55, 0.85)])
    b.add(_disc(radius, height - top_t, height, top_t / 2.5, oval=oval))
    if kind == "pedestal":  # a turned column on a flared (tulip or stepped) foot
        foot = radius * r.uniform(0.45, 0.65)
        col = r.uniform(0.04, 0.08)
        profile = [(foot, 0.0), (foot, 0.02), (foot * 0.5, 0.06), (col, height * 0.3), (col * 0.8, height * 0.6),
                   (col * 1.6, height - top_t - 0.01), (col * 1.6, height - top_t + 0.005)]
        b.add(_turned(profile))
    else:  # turned legs under a ring apron
        n = 3 if r.random() < 0.3 else 4
        angles = np.deg2rad(np.arange(n) * 360.0 / n + 45.0)
        reach = radius * 0.72
        b.add(_sector(reach - 0.03, reach + 0.03, height - top_t - 0.08, height - top_t + 0.005, 360.0).scale([1.0, oval, 1.0]))
        for a in angles:
            b.add(_turned(_baluster(height - top_t + 0.005, r.uniform(0.02, 0.035), int(r.integers(1, 4)), r),
                          at=(reach * np.cos(a), reach * np.sin(a) * oval)))


def _bookshelf(b: PartBuilder) -> None:
    r = b.rng
    kind = r.choice(["arched", "round", "curved"])
    if kind == "arched":  # a front frame with arch-topped openings, extruded to depth, on a thin back
        w, h, depth = r.uniform(0.6, 1.3), r.uniform(1.0, 1.9), r.uniform(0.28, 0.4)
        t = r.uniform(0.025, 0.04)
        usable = h - w / 2 + 0.15  # the openings end just inside the arch
        cols, rows = int(r.integers(1, 4)), max(2, int(usable / r.uniform(0.25, 0.4)))
        arch = np.linspace(0.0, np.pi, 13)
        outer = [(-w / 2, 0.0), (w / 2, 0.0), (w / 2, h - w / 2)] + [(w / 2 * np.cos(a), h - w / 2 + w / 2 * np.sin(a)) for a in arch[1:-1]] + [(-w / 2, h - w / 2)]
        frame = _polygon(outer)
        cell_w, cell_h = (w - t) / cols - t, (usable - t) / rows - t
        holes = []
        for i in range(cols):
            for j in range(rows):
                x0, z0 = -w / 2 + t + i * (cell_w + t), t + j * (cell_h + t)
                rise = min(cell_w / 2, cell_h * 0.4)
                top = [(x0 + cell_w / 2 + cell_w / 2 * np.cos(a), z0 + cell_h - rise + rise * np.sin(a)) for a in arch]
                holes.append(_polygon([(x0, z0), (x0 + cell_w, z0)] + top + [(x0, z0 + cell_h - rise)]))
        front = frame - mf.CrossSection.batch_boolean(holes, mf.OpType.Add)
        b.add(_extruded(front, depth - 0.01, _PROFILE_XZ).translate([0.0, -0.005, 0.0]))
        b.add(_extruded(frame, 0.012, _PROFILE_XZ).translate([0.0, depth / 2 - 0.011, 0.0]))
        return
    if kind == "round":  # a revolving bookcase: round tiers on a turned core, radial dividers
        radius, tiers = r.uniform(0.25, 0.4), int(r.integers(2, 5))
        gap, t = r.uniform(0.25, 0.35), r.uniform(0.02, 0.03)
        h = tiers * gap + t
        b.add(_turned([(0.05, 0.0), (0.05, h)]))
        fins = int(r.integers(3, 7))
        for k in range(tiers + 1):
            b.add(_disc(radius, k * gap, k * gap + t, t / 3))
        for k in range(tiers):
            for f in range(fins):
                a = 360.0 * f / fins + 30.0 * k
                b.add(_sector(0.03, radius - 0.005, k * gap + t / 2, (k + 1) * gap + t / 2, 4.0, facing=a))
        return
    # curved wall shelves: ring-sector boards on a curved back, sector end panels, the concave side to the front
    bend, arc = r.uniform(0.7, 1.4), r.uniform(50, 80)
    depth, h, t = r.uniform(0.25, 0.35), r.uniform(0.9, 1.8), r.uniform(0.02, 0.03)
    centre = (0.0, -bend + depth / 2)
    b.add(_sector(bend - 0.012, bend + 0.004, 0.0, h, arc, facing=90.0, centre=centre))
    for z in np.linspace(t / 2, h - t / 2, int(r.integers(3, 7))):
        b.add(_sector(bend - depth, bend, z - t / 2, z + t / 2, arc, facing=90.0, centre=centre, rounding=t / 2 - 0.002))
    for side in (-1, 1):
        b.add(_sector(bend - depth, bend, 0.0, h, 2.0 * np.rad2deg(t / bend), facing=90.0 + side * (arc / 2 - np.rad2deg(t / bend)),
                      centre=centre))


def _bed(b: PartBuilder) -> None:
    r = b.rng
    kind = r.choice(["sleigh", "round", "arched"])
    if kind == "round":  # a drum base and a round mattress, a ring-sector headboard behind
        radius = r.uniform(0.95, 1.25)
        base_h, mattress_t = r.uniform(0.2, 0.35), r.uniform(0.18, 0.26)
        b.add(_disc(radius, 0.0, base_h, 0.03))
        b.add(_disc(radius - 0.04, base_h - 0.01, base_h + mattress_t, mattress_t / 3), material=1)
        b.add(_sector(radius - 0.02, radius + r.uniform(0.06, 0.12), 0.0, base_h + r.uniform(0.6, 0.9), r.uniform(110, 180),
                      facing=90.0, rounding=0.025), material=1)
        return
    w, length = r.uniform(0.9, 1.9), r.uniform(1.95, 2.2)
    base_h, mattress_t, leg = r.uniform(0.15, 0.3), r.uniform(0.16, 0.26), r.uniform(0.05, 0.15)
    side = _rounded(_polygon([(-0.04, 0.0), (0.04, 0.0), (0.04, base_h), (-0.04, base_h)]), 0.02, 8)
    for sx in (-1, 1):  # rounded side rails along y
        b.add(_extruded(side, length, _PROFILE_XZ).translate([sx * (w / 2 + 0.02), 0.0, leg]))
    slats = _polygon([(-w / 2, leg + base_h * 0.4), (w / 2, leg + base_h * 0.4), (w / 2, leg + base_h), (-w / 2, leg + base_h)])
    b.add(_extruded(slats, length - 0.02, _PROFILE_XZ))
    mattress = _polygon([(-w / 2 + 0.02, leg + base_h - 0.01), (w / 2 - 0.02, leg + base_h - 0.01),
                         (w / 2 - 0.02, leg + base_h + mattress_t), (-w / 2 + 0.02, leg + base_h + mattress_t)])
    b.add(_extruded(_rounded(mattress, 0.04, 8), length - 0.08, _PROFILE_XZ), material=1)
    top = leg + base_h + mattress_t
    for x in (-w / 2 - 0.02, w / 2 + 0.02):  # turned feet under the rails
        for y in (-length / 2 + 0.1, length / 2 - 0.1):
            b.add(_turned([(0.03, 0.0), (0.022, leg * 0.5), (0.035, leg + 0.02)], at=(x, y)))
    if kind == "sleigh":  # scrolled ends: profiles in (y, z) extruded across the width
        head_h, foot_h = r.uniform(0.5, 0.9), r.uniform(0.15, 0.4)
        for end, height in ((1, head_h), (-1, foot_h)):
            y0 = end * (length / 2 + 0.01)
            path = [(y0, 0.02), (y0, top * 0.7), (y0 + end * 0.06, top + height * 0.6), (y0 + end * 0.16, top + height),
                    (y0 + end * 0.22, top + height - 0.06)]
            b.add(_extruded(_strip(path, 0.04), w + 0.12, _PROFILE_YZ))
    else:  # an arched headboard panel
        head_h = r.uniform(0.5, 0.9)
        arc = np.linspace(0.0, np.pi, 17)
        outline = [(-w / 2 - 0.06, 0.0), (w / 2 + 0.06, 0.0)] + [((w / 2 + 0.06) * np.cos(a), top + head_h * (0.55 + 0.45 * np.sin(a))) for a in arc]
        b.add(_extruded(_polygon(outline), 0.06, _PROFILE_XZ).translate([0.0, length / 2 + 0.01, 0.0]), material=1)


def _sofa(b: PartBuilder) -> None:
    r = b.rng
    kind = r.choice(["crescent", "profile"])
    seat_h, back_h = r.uniform(0.38, 0.46), r.uniform(0.3, 0.45)
    if kind == "crescent":  # seat and back as ring sectors about a centre in front of the sofa
        bend, arc, d = r.uniform(1.2, 2.2), r.uniform(50, 90), r.uniform(0.75, 0.95)
        centre = (0.0, -bend + d / 2)
        plinth = r.uniform(0.08, 0.15)
        b.add(_sector(bend - d + 0.05, bend - 0.05, 0.0, plinth, arc - 4, facing=90.0, centre=centre))
        b.add(_sector(bend - d, bend, plinth - 0.01, seat_h, arc, facing=90.0, centre=centre, rounding=0.05), material=1)
        b.add(_sector(bend - r.uniform(0.16, 0.24), bend, seat_h - 0.05, seat_h + back_h, arc, facing=90.0, centre=centre,
                      rounding=0.06), material=1)
        return
    # a side profile (seat, raked back, rounded) extruded across the width, scrolled arm panels at the ends
    seats = int(r.integers(1, 4))
    w, d = seats * r.uniform(0.6, 0.75), r.uniform(0.8, 0.98)
    rake, leg = r.uniform(0.05, 0.15), r.uniform(0.06, 0.16)
    body = _polygon([(-d / 2, leg), (d / 2, leg), (d / 2 + rake, seat_h + back_h), (d / 2 - 0.22, seat_h + back_h),
                     (d / 2 - 0.22 - rake * 0.5, seat_h), (-d / 2, seat_h)])
    body = _rounded(body, 0.06)
    b.add(_extruded(body, w, _PROFILE_YZ), material=1)
    arm_top = seat_h + r.uniform(0.12, 0.22)
    arm = _polygon([(-d / 2, leg), (d / 2, leg), (d / 2, arm_top), (-d / 2, arm_top)])
    arm = _rounded(arm, 0.08)
    thick = r.uniform(0.1, 0.2)
    for sx in (-1, 1):
        b.add(_extruded(arm, thick, _PROFILE_YZ).translate([sx * (w / 2 + thick / 2 - 0.02), 0.0, 0.0]), material=1)
    for x in (-w / 2 - thick + 0.06, w / 2 + thick - 0.06):
        for y in (-d / 2 + 0.08, d / 2 - 0.08):
            b.add(_turned([(0.02, 0.0), (0.03, leg * 0.6), (0.035, leg + 0.02)], at=(x, y)))


BUILDERS = {"table": _table, "chair": _chair, "bookshelf": _bookshelf, "bed": _bed, "sofa": _sofa}
