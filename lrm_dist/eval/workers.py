"""The evaluation job's Ray Data steps: read shards into input rows, reconstruct in actors, score in CPU tasks.

Every step turns a per-asset error into a ``failed`` row instead of failing the job (a damaged shard
tar fails the assets it could not read; an input view that is not a safe, readable PNG fails its
asset); meshes travel between steps as raw bytes (float32 vertices, int64 faces, uint8 colours),
never as ragged tensors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from lrm_dist.images import PNG_ONLY, BadImage, decode_image, encode_image, one_line, rgba8
from lrm_dist.log import get_logger
from lrm_dist.shards.reader import read_raw_samples
from lrm_dist.shards.sample import RGBA_MEMBERS, ShardSample

log = get_logger(__name__)

INPUT_COLUMNS = ("asset_id", "category", "mesh_path", "render_settings_hash", "input_view", "rgba_png",
                 "input_c2w", "input_intrinsics", "error")


def input_members(view: int) -> frozenset[str | tuple[str, ...]]:
    """The shard members the job needs (suffixes after the key): meta, cameras, one view's RGBA (PNG or WebP)."""
    return frozenset({"meta.json", "cameras.json", tuple(f"{view:03d}.{m}" for m in RGBA_MEMBERS)})


def _input_row(asset_id: str, target: dict, view: int, error: str = "") -> dict:
    return {"asset_id": asset_id, "category": target["category"], "mesh_path": target["mesh_path"],
            "render_settings_hash": target["render_settings_hash"], "input_view": view, "rgba_png": b"",
            "input_c2w": [], "input_intrinsics": [], "error": error}


def select_input(raw: dict, view: int, pending: dict[str, dict]) -> list[dict]:
    """A shard sample -> [input row] when its asset is pending evaluation, else [] (done, or not selected).

    Reads the sample's meta, cameras and the input view's PNG bytes (``ShardSample``); the PNG is decoded
    later, behind the image guard, by the actor. A missing or unreadable member makes a failed row."""
    key = raw["__key__"]
    target = pending.get(key)
    if target is None:
        return []
    row = _input_row(key, target, view)
    sample = ShardSample(raw)
    try:
        meta, (c2w, intrinsics) = sample.meta, sample.cameras()
        if meta.get("settings_hash") != target["render_settings_hash"]:
            return []  # a superseded copy of the sample; the manifest's one is elsewhere
        n_views = sample.n_views
        if view >= n_views:
            raise ValueError(f"eval.input_view={view} but the sample has {n_views} views")
        member = sample.view_member(view, "rgba") or f"{view:03d}.{RGBA_MEMBERS[0]}"
        data = sample.member_bytes(member)
        if not member.endswith(".png"):  # a WebP shard: the actor and the report take PNG bytes
            data = encode_image(decode_image(data, sample.name(member), rgba8, formats=("WEBP",)))
        row["rgba_png"] = data
        row["input_c2w"] = c2w[view].reshape(-1).tolist()
        row["input_intrinsics"] = intrinsics[view].tolist()
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        row["error"] = f"unreadable shard sample: {one_line(exc)}"
    return [row]


def shard_inputs(item: dict, view: int, pending: dict[str, dict]) -> Iterator[dict]:
    """Ray Data ``flat_map``: one shard (``url``, ``shard`` name) -> an input row per pending asset it holds.

    Pending assets of the shard that it does not yield (a damaged or truncated tar, a missing sample)
    get a row with the reason as ``error``, so they become failed rows instead of stopping the job.
    """
    mine = {a for a, t in pending.items() if t["shard"] == item["shard"]}
    found, samples, damage = set(), 0, ""
    try:
        for raw in read_raw_samples(item["url"], input_members(view)):
            samples += 1
            for row in select_input(raw, view, pending):
                found.add(row["asset_id"])
                yield row
    except Exception as exc:  # any read failure of this shard fails its unread assets, not the job
        damage = f"shard {item['shard']} is unreadable after {samples} samples ({one_line(exc)})"
    for asset_id in sorted(mine - found):
        target = pending[asset_id]
        reason = damage or (f"sample with render settings {target['render_settings_hash']} not found in "
                            f"{item['shard']} ({samples} samples read)")
        yield _input_row(asset_id, target, view, reason)


class ReconstructActor:
    """Holds one ``Reconstructor`` (GPU when the actor has one, else CPU); batch of input rows -> rows with meshes.

    ``resolution``, ``threshold``, ``mesher`` and ``smoothing`` are the job's resolved settings (``mesh_settings(serve, eval)``
    with the model's calibrated iso-level filled in), so they are the ones hashed.
    """

    def __init__(self, checkpoint: str, resolution: int, threshold: float, source_distance: float | None,
                 precision: str = "auto", revision: str | None = None, mesher: str = "marching_cubes",
                 smoothing: int = 0):
        from lrm_dist.model.pretrained import from_pretrained
        from lrm_dist.reconstruct import MeshSettings, Reconstructor, resolve_device
        from lrm_dist.storage import is_url, local_folder

        device = resolve_device("auto")
        local = local_folder(checkpoint) if is_url(checkpoint) else checkpoint  # an object-store model: a local copy
        settings = MeshSettings(mesher=mesher, resolution=resolution, threshold=threshold,
                                setting="eval.density_threshold", smoothing=smoothing)
        self.recon = Reconstructor(from_pretrained(local, revision=revision, device=device), settings, device,
                                   precision, setting="eval.actors")
        self.source_distance = source_distance

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from lrm_dist.eval.reconstruct import object_meshes, prepare_input

        n = len(batch["asset_id"])
        errors = [str(e) for e in batch["error"]]
        pngs = np.array(list(batch["rgba_png"]), dtype=object)
        prepared, index = [], []
        for i in range(n):
            if errors[i]:
                continue
            try:
                name = f"asset {batch['asset_id'][i]} member {int(batch['input_view'][i]):03d}.rgba.png"
                rgba = decode_image(bytes(pngs[i]), name, rgba8, formats=PNG_ONLY)
            except BadImage as exc:
                errors[i], pngs[i] = f"bad input view: {exc}", b""  # the report never shows the bad file
                continue
            try:
                c2w = np.asarray(batch["input_c2w"][i], dtype=np.float64).reshape(1, 4, 4)
                k = np.asarray(batch["input_intrinsics"][i], dtype=np.float64).reshape(1, 6)
                prepared.append(prepare_input(rgba, c2w, k, self.recon.source_size, 0, self.source_distance,
                                               self.recon.model.config.source_frame))
                index.append(i)
            except (ValueError, OSError) as exc:
                errors[i] = f"cannot prepare the input view: {exc}"
        vertices, faces, colors = [b""] * n, [b""] * n, [b""] * n
        empty_reason, seconds = [""] * n, [0.0] * n
        try:
            meshes = object_meshes(self.recon, prepared)
        except Exception as exc:  # a model failure fails this batch's rows, not the job
            meshes = []
            for i in index:
                errors[i] = f"inference failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        for i, mesh in zip(index, meshes):
            vertices[i] = mesh.vertices.astype(np.float32).tobytes()
            faces[i] = mesh.faces.astype(np.int64).tobytes()
            colors[i] = mesh.colors.astype(np.uint8).tobytes()
            empty_reason[i] = mesh.empty_reason or ""
            seconds[i] = float(sum(mesh.timings.values()))
        out = {k: batch[k] for k in INPUT_COLUMNS if k not in ("error", "rgba_png")}
        out.update({
            "rgba_png": pngs,
            "error": np.array(errors, dtype=object), "pred_vertices": np.array(vertices, dtype=object),
            "pred_faces": np.array(faces, dtype=object), "pred_colors": np.array(colors, dtype=object),
            "empty_reason": np.array(empty_reason, dtype=object), "seconds_inference": np.array(seconds),
        })
        return out


def _load_ground_truth(mesh_path: str):
    import fsspec
    import trimesh

    with fsspec.open(mesh_path, "rb") as fh:
        mesh = trimesh.load(fh, file_type=mesh_path.rsplit(".", 1)[-1].lower(), force="mesh", process=False)
    if len(mesh.faces) == 0:
        raise ValueError(f"ground-truth mesh {mesh_path} has no triangles")
    return mesh


def score_row(row: dict, out_dir: str, settings: dict) -> dict:
    """One reconstructed asset -> its EVAL_SCHEMA row; writes its input PNG and (optionally) its GLB."""
    from lrm_dist.eval.metrics import evaluate_mesh, sample_ground_truth
    from lrm_dist.geometry.frame import canonical_to_eval
    from lrm_dist.reconstruct.extract import build_mesh
    from lrm_dist.reconstruct.mesh_files import mesh_bytes
    from lrm_dist.storage import Storage

    start = time.perf_counter()
    asset_id = str(row["asset_id"])
    result = {
        "asset_id": asset_id, "category": str(row["category"]), "status": "failed", "reason": None,
        "eval_hash": settings["eval_hash"], "checkpoint": settings["checkpoint"],
        "render_settings_hash": str(row["render_settings_hash"]), "empty": None, "iou": None, "chamfer_l1": None,
        "accuracy": None, "completeness": None, "normal_consistency": None,
        "fscore_thresholds": list(settings["thresholds"]), "fscore": None, "precision": None, "recall": None,
        "n_vertices": None, "n_faces": None, "input_view": int(row["input_view"]),
        "input_c2w": [float(v) for v in row["input_c2w"]], "input_intrinsics": [float(v) for v in row["input_intrinsics"]],
        "input_file": None, "mesh_file": None, "seconds_inference": float(row.get("seconds_inference", 0.0) or 0.0),
        "seconds_metrics": None,
    }
    storage = Storage(out_dir)
    if row["rgba_png"]:
        result["input_file"] = f"inputs/{asset_id}.png"
        storage.makedirs("inputs")
        storage.write_bytes_atomic(result["input_file"], bytes(row["rgba_png"]))
    if row["error"]:
        result["reason"] = str(row["error"])
        return result
    try:
        verts = np.frombuffer(row["pred_vertices"], dtype=np.float32).reshape(-1, 3)
        faces = np.frombuffer(row["pred_faces"], dtype=np.int64).reshape(-1, 3)
        colors = np.frombuffer(row["pred_colors"], dtype=np.uint8).reshape(-1, 4)
        gt_mesh = _load_ground_truth(str(row["mesh_path"]))
        gt = sample_ground_truth(canonical_to_eval(gt_mesh.vertices), gt_mesh.faces, settings["n_points"],
                                 settings["padding"], settings["seed"])
        m = evaluate_mesh(canonical_to_eval(verts), faces, gt, settings["thresholds"], settings["seed"])
    except (ValueError, OSError, KeyError) as exc:
        result["reason"] = f"metrics failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return result
    if settings["save_meshes"] and len(faces):
        result["mesh_file"] = f"meshes/{asset_id}.glb"
        storage.makedirs("meshes")
        storage.write_bytes_atomic(result["mesh_file"], mesh_bytes(build_mesh(verts, faces, colors), "glb"))
    result.update({
        "status": "ok", "reason": row["empty_reason"] or None, "empty": m.empty, "iou": m.iou,
        "chamfer_l1": m.chamfer_l1, "accuracy": m.accuracy, "completeness": m.completeness,
        "normal_consistency": m.normal_consistency, "fscore": m.fscore, "precision": m.precision,
        "recall": m.recall, "n_vertices": len(verts), "n_faces": len(faces),
        "seconds_metrics": time.perf_counter() - start,
    })
    return result


def score_batch(batch: dict[str, np.ndarray], out_dir: str, settings: dict):
    """Ray Data task: score every row of a (small) batch -> an Arrow table of EVAL_SCHEMA."""
    import pyarrow as pa

    from lrm_dist.schema import EVAL_SCHEMA

    n = len(batch["asset_id"])
    rows = [score_row({k: v[i] for k, v in batch.items()}, out_dir, settings) for i in range(n)]
    return pa.Table.from_pylist(rows, schema=EVAL_SCHEMA)
