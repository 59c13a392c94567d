"""The procedural generator's second style, ``shaped``: the five categories built differently.

The ``blocks`` style (``procedural.py``) assembles axis-aligned boxes and upright cylinders. This one
builds the same categories from what that style never uses: capsules at any angle (splayed legs, raked
back posts, A-frame and trestle supports, rolled arms), rounded and tilted cushions and boards, and other
constructions (ladder and grid shelves, platform and sleigh beds, X and trestle bases). A model trained
on one style and scored on the other measures how far it generalises beyond the generator it learned
from (``assets.sources[].style``). Same contract: z up, metres, front facing -y, one watertight body.
"""

from __future__ import annotations

import manifold3d as mf
import numpy as np

from lrm_dist.assets.procedural import PartBuilder


def _splayed_legs(b: PartBuilder, xs: float, ys: float, top: float, splay: float, radius: float) -> None:
    """Four capsule legs from under a rectangle of half-size (xs, ys) at height ``top`` to the floor,
    their feet pushed out by ``splay`` (metres)."""
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.rod((sx * xs, sy * ys, top), (sx * (xs + splay), sy * (ys + splay), radius), radius)


def _splay_at(z: float, top: float, splay: float, radius: float) -> float:
    """How far a splayed leg has moved out at height ``z``."""
    return splay * (top - z) / (top - radius)


def _chair(b: PartBuilder) -> None:
    r = b.rng
    seat_h, w, d = r.uniform(0.42, 0.48), r.uniform(0.42, 0.55), r.uniform(0.4, 0.5)
    seat_t = r.uniform(0.05, 0.09)
    b.rounded_box((0, 0, seat_h - seat_t / 2), (w, d, seat_t), seat_t / 3, material=1)
    leg_r, inset, splay = r.uniform(0.015, 0.025), 0.05, r.uniform(0.03, 0.08)
    leg_top = seat_h - seat_t / 2
    _splayed_legs(b, w / 2 - inset, d / 2 - inset, leg_top, splay, leg_r)
    if r.random() < 0.2:  # a stool: legs only, a ring of rails between them
        z = seat_h * 0.35
        out = _splay_at(z, leg_top, splay, leg_r)
        xs, ys = w / 2 - inset + out, d / 2 - inset + out
        for (x0, y0), (x1, y1) in [((-1, -1), (1, -1)), ((1, -1), (1, 1)), ((1, 1), (-1, 1)), ((-1, 1), (-1, -1))]:
            b.rod((x0 * xs, y0 * ys, z), (x1 * xs, y1 * ys, z), leg_r * 0.7)
        return
    rake = np.tan(np.deg2rad(r.uniform(6, 18)))
    back_h = r.uniform(0.35, 0.5)
    post_x, post_y = w / 2 - 0.03, d / 2 - 0.03
    for sx in (-1, 1):  # raked back posts
        b.rod((sx * post_x, post_y, seat_h - seat_t / 2), (sx * post_x, post_y + rake * back_h, seat_h + back_h), leg_r)
    style = r.choice(["pad", "bow", "rails"])
    if style == "pad":  # an upholstered back leaning with the posts
        pad_h = back_h * r.uniform(0.5, 0.8)
        z = seat_h + back_h - pad_h / 2 - 0.02
        b.rounded_box((0, post_y + rake * (z - seat_h) + 0.01, z), (2 * post_x + 0.02, 0.05, pad_h), 0.02,
                      tilt=float(np.rad2deg(np.arctan(rake))), material=1)
    elif style == "bow":  # a rail bowed backwards through the post tops
        xs = np.linspace(-post_x, post_x, 7)
        ys = post_y + rake * back_h + 0.06 * (1 - (xs / post_x) ** 2)
        for i in range(len(xs) - 1):
            b.rod((xs[i], ys[i], seat_h + back_h), (xs[i + 1], ys[i + 1], seat_h + back_h), 0.02)
        for x in np.linspace(-post_x, post_x, 5)[1:-1]:  # spindles
            b.rod((x, post_y, seat_h - 0.01), (x, post_y + rake * back_h + 0.06 * (1 - (x / post_x) ** 2), seat_h + back_h), 0.01)
    else:  # horizontal rails between the posts
        for f in np.linspace(0.35, 1.0, int(r.integers(2, 5))):
            z = seat_h + f * back_h
            b.rod((-post_x, post_y + rake * f * back_h, z), (post_x, post_y + rake * f * back_h, z), 0.015)
    if r.random() < 0.35:  # arms: a rail from the back post to a front support on each side
        arm_z = seat_h + r.uniform(0.18, 0.25)
        for sx in (-1, 1):
            x = sx * w / 2
            b.rod((x, -d / 2 + 0.04, arm_z), (sx * post_x, post_y + rake * (arm_z - seat_h), arm_z), 0.022, material=1)
            b.rod((x, -d / 2 + 0.04, seat_h - seat_t / 2), (x, -d / 2 + 0.04, arm_z), leg_r)


def _table(b: PartBuilder) -> None:
    r = b.rng
    height, top_t = r.uniform(0.45, 0.78), r.uniform(0.025, 0.05)
    w, d = r.uniform(0.8, 1.8), r.uniform(0.55, 1.0)
    kind = r.choice(["trestle", "x-base", "splayed"])
    corner = r.uniform(0.02, 0.2)  # rounded corners: the top is the hull of four corner discs (or an oval)
    if kind == "x-base" or r.random() < 0.3:
        w = d = min(w, 1.1)
    b.rounded_box((0, 0, height - top_t / 2), (w, d, top_t), min(corner, top_t / 2))
    if kind == "trestle":  # an A-shaped support at each end, a foot along y, a stretcher under the apexes
        ends = [sx * (w / 2 - r.uniform(0.12, 0.2)) for sx in (-1, 1)]
        for x in ends:
            for sy in (-1, 1):
                b.rod((x, sy * d * 0.35, 0.03), (x, sy * 0.03, height - top_t), 0.03)
            b.rod((x, -d * 0.4, 0.03), (x, d * 0.4, 0.03), 0.03)
        b.rod((ends[0], 0, height - top_t - 0.05), (ends[1], 0, height - top_t - 0.05), 0.025)
    elif kind == "x-base":  # a column on two crossed feet
        foot = min(w, d) * r.uniform(0.3, 0.45)
        angle = r.uniform(0, np.pi / 2)
        for a in (angle, angle + np.pi / 2):
            b.rod((-foot * np.cos(a), -foot * np.sin(a), 0.035), (foot * np.cos(a), foot * np.sin(a), 0.035), 0.035)
        b.rod((0, 0, 0.035), (0, 0, height - top_t), r.uniform(0.04, 0.07))
    else:
        _splayed_legs(b, w / 2 - 0.1, d / 2 - 0.1, height - top_t, r.uniform(0.04, 0.1), r.uniform(0.02, 0.035))


def _bookshelf(b: PartBuilder) -> None:
    r = b.rng
    kind = r.choice(["ladder", "grid", "etagere"])
    w, t = r.uniform(0.6, 1.3), r.uniform(0.018, 0.03)
    if kind == "ladder":  # leaning front rails, upright back rails, shelves shallower towards the top
        h, depth = r.uniform(1.3, 1.9), r.uniform(0.35, 0.45)
        top_depth = r.uniform(0.15, 0.22)
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.02)
            b.rod((x, depth / 2, 0.02), (x, depth / 2, h), 0.02)
            b.rod((x, -depth / 2, 0.02), (x, depth / 2 - top_depth, h), 0.02)
        for z in np.linspace(0.15, h - 0.1, int(r.integers(3, 6))):
            front = -depth / 2 + (depth - top_depth) * (z - 0.02) / (h - 0.02)
            b.box((0, (front + depth / 2) / 2, z), (w - 0.02, depth / 2 - front, t))
    elif kind == "grid":  # a cube grid: full-height dividers and full-width boards, a back on some
        h, depth = r.uniform(0.7, 1.6), r.uniform(0.28, 0.4)
        cols, rows = int(r.integers(2, 5)), int(r.integers(2, 5))
        for x in np.linspace(-w / 2 + t / 2, w / 2 - t / 2, cols + 1):
            b.box((x, 0, h / 2), (t, depth, h))
        for z in np.linspace(t / 2, h - t / 2, rows + 1):
            b.box((0, 0, z), (w, depth, t))
        if r.random() < 0.5:
            b.box((0, depth / 2 - 0.005, h / 2), (w, 0.01, h))
    else:  # four posts and open shelves with rounded corners
        h, depth = r.uniform(1.0, 1.9), r.uniform(0.3, 0.42)
        post = r.uniform(0.012, 0.02)
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.rod((sx * (w / 2 - 0.03), sy * (depth / 2 - 0.03), post), (sx * (w / 2 - 0.03), sy * (depth / 2 - 0.03), h), post)
        for z in np.linspace(0.1, h - t / 2, int(r.integers(3, 7))):
            b.rounded_box((0, 0, z), (w, depth, t), t / 2 - 0.002)


def _bed(b: PartBuilder) -> None:
    r = b.rng
    w, length = r.uniform(0.9, 1.9), r.uniform(1.95, 2.2)
    kind = r.choice(["platform", "sleigh"])
    base_h, mattress_t = r.uniform(0.12, 0.25), r.uniform(0.16, 0.26)
    overhang = r.uniform(0.05, 0.15) if kind == "platform" else 0.02
    leg = r.uniform(0.04, 0.12)  # the base floats on short legs
    b.rounded_box((0, 0, leg + base_h / 2), (w + 2 * overhang, length + overhang, base_h), 0.03)
    _splayed_legs(b, w / 2 - 0.05, length / 2 - 0.05, leg + 0.02, 0.0, 0.025)
    top = leg + base_h + mattress_t
    b.rounded_box((0, -0.01, leg + base_h + mattress_t / 2 - 0.01), (w, length - 0.06, mattress_t), r.uniform(0.03, 0.08), material=1)
    for sx in ((-1, 1) if w > 1.3 else (0,)):  # pillows
        b.rounded_box((sx * w / 4, length / 2 - 0.25, top + 0.05), (w / 2.4 if sx else w * 0.6, 0.32, 0.12), 0.05, material=1)
    head_h = r.uniform(0.45, 0.9)
    if kind == "platform":  # an upholstered headboard leaning back
        b.rounded_box((0, length / 2 + 0.02, leg + (base_h + head_h) / 2), (w + 2 * overhang, 0.1, base_h + head_h), 0.04,
                      tilt=r.uniform(4, 12), material=1)
    else:  # sleigh ends: boards swept outward at the top (hulls of two horizontal bars)
        for end, height in ((1, head_h), (-1, r.uniform(0.2, 0.45))):
            y = end * (length / 2 + 0.03)
            b.add(_swept_board(w + 0.04, (y, leg + 0.05), (y + end * 0.12, top + height)))


def _swept_board(width: float, low: tuple[float, float], high: tuple[float, float]) -> mf.Manifold:
    """A board between two horizontal bars (y, z) along x: the hull of two x-axis cylinders."""
    bar = mf.Manifold.cylinder(width, 0.035, 0.035, 16, True).rotate([0.0, 90.0, 0.0])
    return mf.Manifold.batch_hull([bar.translate([0.0, float(low[0]), float(low[1])]),
                                   bar.translate([0.0, float(high[0]), float(high[1])])])


def _sofa(b: PartBuilder) -> None:
    r = b.rng
    seats, seat_w = int(r.integers(1, 5)), r.uniform(0.55, 0.7)
    w, d = seats * seat_w, r.uniform(0.8, 0.98)
    leg = r.uniform(0.1, 0.2)  # mid-century: the body on splayed legs
    base_h, cushion_t = r.uniform(0.12, 0.2), r.uniform(0.12, 0.2)
    b.rounded_box((0, 0, leg + base_h / 2), (w, d, base_h), 0.03, material=1)
    _splayed_legs(b, w / 2 - 0.08, d / 2 - 0.08, leg + 0.03, r.uniform(0.02, 0.05), 0.02)
    back_t, back_h = r.uniform(0.14, 0.22), r.uniform(0.35, 0.5)
    seat_top = leg + base_h
    for i in range(seats):
        x = -w / 2 + seat_w * (i + 0.5)
        b.rounded_box((x, -back_t / 2, seat_top + cushion_t / 2 - 0.02), (seat_w - 0.01, d - back_t, cushion_t), cushion_t / 3, material=1)
        b.rounded_box((x, d / 2 - back_t / 2 - 0.02, seat_top + back_h / 2 - 0.02), (seat_w - 0.01, back_t, back_h), back_t / 3,
                      tilt=r.uniform(5, 14), material=1)
    if r.random() < 0.75:  # rolled arms: a capsule along y on a side panel
        arm_r = r.uniform(0.06, 0.1)
        arm_z = seat_top + r.uniform(0.12, 0.22)
        for sx in (-1, 1):
            x = sx * (w / 2 + arm_r * 0.5)
            b.rounded_box((x, 0, (leg + arm_z) / 2 + 0.02), (arm_r * 1.2, d, arm_z - leg), 0.02, material=1)
            b.rod((x, -d / 2 + arm_r, arm_z), (x, d / 2 - arm_r, arm_z), arm_r, material=1)


BUILDERS = {"table": _table, "chair": _chair, "bookshelf": _bookshelf, "bed": _bed, "sofa": _sofa}
