"""Blender scene building for one asset (bpy 5.0): reset, import, normalise, materials, lights, passes.

Every function takes the ``bpy`` module as its first argument, so this module imports without Blender
(the library must import on hosts without bpy). Blender 5.0 specifics handled here: compositor trees
are node groups assigned to ``scene.compositing_node_group`` and File Output nodes use
``file_output_items``; ``read_factory_settings`` frees the preferences, so they are re-fetched after
each reset; the OBJ importer rotates the object (normalisation composes with ``matrix_world``).
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np

from lrm_dist.render.inputs import AssetInputError
from lrm_dist.render.lighting import aim_rotation

DEPTH_ITEM, NORMAL_ITEM, PASS_PREFIX = "depth", "normal", "pass_"
_IMPORTERS = {".glb": "gltf", ".gltf": "gltf", ".obj": "obj", ".ply": "ply", ".stl": "stl"}


def reset_scene(bpy) -> None:
    """Factory-reset Blender (empty scene) with script auto-execution off."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False


def import_asset(bpy, path: Path, up_axis: str | None) -> list:
    """Import a mesh file, drop any cameras/lights it carries; returns its mesh objects (z-up frame).

    The import runs with the mesh's folder as working directory (Blender's OBJ importer retries a
    texture's bare name there) and its images are then confined to that folder (``confine_images``).
    """
    kind = _IMPORTERS.get(path.suffix.lower())
    if kind is None:
        raise AssetInputError(f"{path.name}: unsupported format {path.suffix!r}")
    try:
        with contextlib.chdir(path.parent):
            _run_importer(bpy, kind, path, up_axis)
            confine_images(bpy, path.parent)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Location:")]
        raise AssetInputError(f"{path.name}: Blender cannot import it: {(lines or ['?'])[-1][:200]}") from None
    scene = bpy.context.scene
    for obj in list(scene.objects):
        if obj.type in ("CAMERA", "LIGHT", "LIGHT_PROBE", "SPEAKER"):
            bpy.data.objects.remove(obj, do_unlink=True)
    meshes = [o for o in scene.objects if o.type == "MESH" and len(o.data.polygons) > 0]
    if not meshes:
        raise AssetInputError(f"{path.name}: no mesh with faces after import")
    return meshes


def _run_importer(bpy, kind: str, path: Path, up_axis: str | None) -> None:
    """Call Blender's importer for ``kind`` with the axes the record's up axis implies."""
    # Blender's importers turn y-up files into z-up; ply/stl are read as z-up unless the record says y.
    axes = {"forward_axis": "NEGATIVE_Z", "up_axis": "Y"} if up_axis == "y" else {"forward_axis": "Y", "up_axis": "Z"}
    if kind == "gltf":
        bpy.ops.import_scene.gltf(filepath=str(path))
    elif kind == "obj":
        z_up = {"forward_axis": "Y", "up_axis": "Z"} if up_axis == "z" else {}  # default: y-up
        bpy.ops.wm.obj_import(filepath=str(path), **z_up)
    elif kind == "ply":
        bpy.ops.wm.ply_import(filepath=str(path), **axes)
    else:
        bpy.ops.wm.stl_import(filepath=str(path), **axes)


def confine_images(bpy, folder: Path) -> None:
    """Pin every file-backed image to its absolute path inside ``folder``, or refuse the asset.

    Run right after an import with ``folder`` as working directory (so a relative image path means the
    same file to Blender and here), before lighting loads HDRIs: no texture may come from elsewhere.
    """
    real_folder = Path(os.path.realpath(folder))
    for image in bpy.data.images:
        if image.packed_file is not None or not image.filepath:
            continue
        name = image.filepath[2:] if image.filepath.startswith("//") else image.filepath
        real = Path(os.path.realpath(name))  # relative: to the working directory, as Blender opens it
        if not real.is_relative_to(real_folder):
            raise AssetInputError(f"{folder.name}: texture {image.filepath[:120]!r} resolves outside the asset folder")
        image.filepath = str(real)


def normalize_objects(bpy, center: list[float], scale: float) -> None:
    """Map the imported (z-up) scene into the canonical frame: canonical = (p - center) * scale."""
    from mathutils import Matrix

    m = Matrix.Diagonal((scale, scale, scale, 1.0))
    m.translation = [-c * scale for c in center]
    for obj in bpy.context.scene.objects:
        if obj.parent is None:
            obj.matrix_world = m @ obj.matrix_world
    bpy.context.view_layer.update()


def wire_vertex_colors(bpy, meshes: list) -> int:
    """Make colour attributes (glTF COLOR_0) drive the base colour where no node feeds it; returns links made."""
    made = 0
    for obj in meshes:
        attrs = obj.data.color_attributes
        if len(attrs) == 0:
            continue
        layer = attrs.active_color.name if attrs.active_color is not None else attrs[0].name
        if len(obj.data.materials) == 0:
            obj.data.materials.append(bpy.data.materials.new(f"{obj.name}-vcol"))
        for mat in obj.data.materials:
            if mat is None:
                continue
            if mat.node_tree is None:
                mat.use_nodes = True
            nodes = mat.node_tree.nodes
            bsdf = next((n for n in nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)
            if bsdf is None:
                continue
            if bsdf.inputs["Base Color"].is_linked:
                continue
            vcol = nodes.new("ShaderNodeVertexColor")
            vcol.layer_name = layer
            mat.node_tree.links.new(vcol.outputs["Color"], bsdf.inputs["Base Color"])
            made += 1
    return made


def apply_lighting(bpy, spec: dict) -> None:
    """Build the lights and world of a ``lrm_dist.render.lighting.sample_lighting`` spec."""
    scene = bpy.context.scene
    world = bpy.data.worlds.new("lrm-world")
    scene.world = world
    world.use_nodes = True
    if hasattr(world, "cycles"):  # a small importance map: the default 1024 costs seconds per view on CPU
        world.cycles.sampling_method = "MANUAL"
        world.cycles.sample_map_resolution = 256
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = next(n for n in nodes if n.bl_idname == "ShaderNodeBackground")
    background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    background.inputs["Strength"].default_value = spec["ambient"]
    if spec.get("hdri"):
        hdri = spec["hdri"]
        env = nodes.new("ShaderNodeTexEnvironment")
        env.image = bpy.data.images.load(hdri["path"], check_existing=True)
        mapping = nodes.new("ShaderNodeMapping")
        coords = nodes.new("ShaderNodeTexCoord")
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(hdri["rotation_deg"]))
        links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], env.inputs["Vector"])
        links.new(env.outputs["Color"], background.inputs["Color"])
        background.inputs["Strength"].default_value = hdri["strength"]
    for i, light in enumerate(spec["lights"]):
        data = bpy.data.lights.new(f"lrm-light-{i}", light["type"])
        data.energy = light["energy"]
        data.use_temperature = True
        data.temperature = light["temperature"]
        if light["type"] == "AREA":
            data.size = light["size"]
        elif light["type"] == "SUN":
            data.angle = math.radians(light["angle_deg"])
        obj = bpy.data.objects.new(f"lrm-light-{i}", data)
        obj.location = light["location"]
        obj.rotation_euler = aim_rotation(light["location"])
        scene.collection.objects.link(obj)


def pick_cycles_device(bpy, wanted: str) -> str:
    """Enable the Cycles compute device (OPTIX, CUDA or CPU) and return its name.

    Re-fetches the preferences every call: ``read_factory_settings`` frees them, and a stale
    reference segfaults.
    """
    scene = bpy.context.scene
    if wanted == "CPU":
        scene.cycles.device = "CPU"
        return "CPU"
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for kind in (("OPTIX", "CUDA") if wanted == "auto" else (wanted,)):
        try:
            prefs.compute_device_type = kind
        except TypeError:  # this build does not know the backend
            continue
        prefs.get_devices()
        devices = [d for d in prefs.devices if d.type == kind]
        if devices:
            for d in prefs.devices:
                d.use = d.type == kind
            scene.cycles.device = "GPU"
            return kind
    if wanted != "auto":
        raise RuntimeError(f"render.cycles_device = {wanted!r}: no such device visible to Blender")
    scene.cycles.device = "CPU"
    return "CPU"


def configure_render(bpy, cfg, threads: int, device: str, out_dir: Path) -> str:
    """Engine, samples, colour management, transparent film, passes and the compositor outputs.

    Returns the Cycles device in use ('-' for other engines). The compositor writes planar depth and
    world normals as float EXRs into ``out_dir`` (a worker-local temporary folder).
    """
    scene = bpy.context.scene
    render = scene.render
    render.engine = cfg.engine
    render.resolution_x = render.resolution_y = cfg.resolution
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.film_transparent = True
    render.threads_mode = "FIXED"
    render.threads = max(1, threads)
    render.use_persistent_data = False
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    used = "-"
    if cfg.engine == "CYCLES":
        scene.cycles.samples = cfg.samples
        scene.cycles.use_adaptive_sampling = False
        scene.cycles.use_denoising = cfg.denoise
        scene.cycles.seed = 0
        used = pick_cycles_device(bpy, device)
    elif cfg.engine == "BLENDER_EEVEE":
        scene.eevee.taa_render_samples = cfg.samples
    layer = scene.view_layers[0]
    layer.use_pass_z = True
    has_normal = cfg.engine != "BLENDER_WORKBENCH"
    if has_normal:
        layer.use_pass_normal = True

    tree = bpy.data.node_groups.new("lrm-passes", "CompositorNodeTree")
    scene.compositing_node_group = tree
    layers = tree.nodes.new("CompositorNodeRLayers")
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.directory = str(out_dir)
    out.file_name = PASS_PREFIX
    out.format.media_type = "IMAGE"
    out.format.file_format = "OPEN_EXR"
    out.format.color_depth = "32"
    out.file_output_items.new("FLOAT", DEPTH_ITEM)
    tree.links.new(layers.outputs["Depth"], out.inputs[DEPTH_ITEM])
    if has_normal:
        out.file_output_items.new("VECTOR", NORMAL_ITEM)
        tree.links.new(layers.outputs["Normal"], out.inputs[NORMAL_ITEM])
    return used


def add_camera(bpy):
    """One perspective camera (horizontal sensor fit, so ``angle`` is the horizontal field of view)."""
    data = bpy.data.cameras.new("lrm-camera")
    data.sensor_fit = "HORIZONTAL"
    data.clip_start, data.clip_end = 0.01, 100.0
    cam = bpy.data.objects.new("lrm-camera", data)
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    return cam


def set_camera(cam, c2w: np.ndarray, fov_deg: float) -> None:
    """Place the camera: Blender cameras already use the OpenGL axes (look down -z, y up)."""
    from mathutils import Matrix

    cam.matrix_world = Matrix([list(map(float, row)) for row in c2w])
    cam.data.angle = math.radians(fov_deg)


def read_float_image(bpy, path: Path) -> np.ndarray:
    """A float image (EXR) as ``[H, W, C]`` float32, top row first."""
    img = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = img.size
        buf = np.empty(w * h * img.channels, dtype=np.float32)
        img.pixels.foreach_get(buf)
        return buf.reshape(h, w, img.channels)[::-1].copy()
    finally:
        bpy.data.images.remove(img)
