"""cluster/: the Dockerfile has what headless Blender, CUDA torch, the report's model-viewer and non-root pods
need, and the VM launcher config validates against Ray's own cluster-config schema with token auth on."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import ray.autoscaler
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "cluster" / "Dockerfile"
LAUNCHER = REPO / "cluster" / "ray-cluster.aws.yaml"
BLENDER_LIBS = {"libx11-6", "libxrender1", "libxfixes3", "libxi6", "libxkbcommon0", "libsm6", "libgl1", "libegl1"}
MESA = {"libgl1-mesa-dri", "libegl-mesa0", "libglx-mesa0"}


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", joined, re.M)]


def test_dockerfile_installs_blender_libs_cuda_torch_and_the_project():
    steps = _instructions(DOCKERFILE.read_text())
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in steps if op == "ARG" and "=" in a}
    base = [a for op, a in steps if op == "FROM"][-1]  # the image's stage (earlier stages only build files)
    assert re.fullmatch(r"python:3\.11[-\w.]*", base.replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"]))
    runs = " ".join(a for op, a in steps if op == "RUN")
    apt = set(shlex.split(runs.split("apt-get install", 1)[1].split("&&", 1)[0]))
    assert BLENDER_LIBS | MESA <= apt
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["TORCH_VERSION"]) and "/whl/cu" in args["TORCH_INDEX_URL"]
    assert '"torch==${TORCH_VERSION}"' in runs and 'pip install ".[render]"' in runs
    assert "import bpy" in runs


def test_dockerfile_runs_as_the_pods_non_root_user():
    steps = _instructions(DOCKERFILE.read_text())
    users = [a for op, a in steps if op == "USER"]
    assert users and users[-1].split(":")[0] == "1000"  # runAsUser/fsGroup in k8s/
    assert any(op == "RUN" and "--uid 1000" in a for op, a in steps)
    assert ("WORKDIR", "/app") in steps  # the RayJobs' runtimeEnvYAML working_dir


def test_dockerignore_lets_through_everything_the_image_copies():
    allowed = {ln[1:].rstrip("/") for ln in (REPO / "cluster" / "Dockerfile.dockerignore").read_text().splitlines()
               if ln.startswith("!")}
    copied = {src.rstrip("/") for op, a in _instructions(DOCKERFILE.read_text()) if op == "COPY" and "--from=" not in a
              for src in a.split()[:-1] if not src.startswith("--")}
    assert copied and copied <= allowed
    assert all((REPO / name).exists() or name == "README.md" for name in copied)  # README: written by the lead


def test_image_gives_reports_the_same_model_viewer_as_local_installs():
    from lrm_dist.eval.html import ENV_VAR, MODEL_VIEWER_FILE, NPM_DIST

    steps = _instructions(DOCKERFILE.read_text())
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in steps if op == "ARG" and "=" in a}
    assert f"@google/model-viewer@{args['MODEL_VIEWER_VERSION']}" in (REPO / "scripts" / "setup-env.sh").read_text()
    stages = [a for op, a in steps if op == "FROM"]
    assert stages[0] == "${NODE_IMAGE} AS model-viewer" and args["NODE_IMAGE"].startswith("node:")
    runs = " ".join(a for op, a in steps if op == "RUN")
    assert '"@google/model-viewer@${MODEL_VIEWER_VERSION}"' in runs
    (copy,) = [a.split() for op, a in steps if op == "COPY" and a.startswith("--from=model-viewer")]
    assert copy[1].endswith(str(NPM_DIST).removeprefix("node_modules"))
    env = dict(a.split("=", 1) for op, a in steps if op == "ENV" and a.startswith(ENV_VAR))
    assert env[ENV_VAR] == copy[2].rstrip("/") + "/" + MODEL_VIEWER_FILE
    assert "assert find_model_viewer_js()" in runs  # the build fails when the report would not find it


def test_launcher_config_matches_rays_schema():
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load(LAUNCHER.read_text())
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    assert {"cpu-render", "gpu-render", "gpu-train"} <= set(config["available_node_types"])


def test_launcher_config_keeps_auth_on_and_the_dashboard_private():
    text = LAUNCHER.read_text()
    config = yaml.safe_load(text)
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    assert "RAY_AUTH_TOKEN" not in text
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "--num-cpus=0" in head_start
