"""Helpers for the k8s/ manifest tests: kustomize builds, KubeRay CRD and Kubernetes schema validation,
and the project's security policy (token auth, non-root, no inline secrets, GPU requests, no exposure)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
# CI clones the repo with shared/ beside it; the CRDs are KubeRay's published ray.io/v1 definitions.
CRD_DIR = REPO.parent / "shared" / "kuberay-crds"
TOKEN_SECRET = ("lrm-dist-ray-token", "auth_token")
SECRET_LIKE = ("TOKEN", "SECRET", "PASSWORD", "ACCESS_KEY", "CREDENTIAL")


def kustomization_dirs() -> list[Path]:
    """Every folder under k8s/ holding a kustomization.yaml (bases and overlays)."""
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def kustomize_command() -> list[str] | None:
    """``kustomize build`` or ``kubectl kustomize`` (kubectl embeds kustomize), whichever is installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    """The documents ``kustomize build path`` produces (a fresh copy; builds are cached per folder)."""
    return copy.deepcopy(_build(Path(path).resolve()))


@lru_cache(maxsize=None)
def _build(path: Path) -> list[dict[str, Any]]:
    cmd = kustomize_command()
    if cmd is None:
        raise RuntimeError("neither kustomize nor kubectl is installed")
    proc = subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"kustomize build {path} failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema refusing unknown fields, as `kubectl apply` (strict field validation) does."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@lru_cache(maxsize=None)
def crd_schema(kind: str) -> dict[str, Any]:
    """The strict ``ray.io/v1`` OpenAPI v3 schema of ``kind`` (RayCluster, RayJob, RayService)."""
    crd = yaml.safe_load((CRD_DIR / f"ray.io_{kind.lower()}s.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return _strict(version["schema"]["openAPIV3Schema"])


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """Schema violations of a RayCluster/RayJob/RayService document (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(crd_schema(doc["kind"]))
    return [f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


def k8s_errors(doc: dict[str, Any], version: str = "1.33") -> list[str]:
    """Violations of Kubernetes' own (strict) schema for a built-in object, via kubernetes-validate."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(map(str, exc.path))
        return [f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}"]
    return []


def pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod template) of every Ray pod a RayCluster, RayJob or RayService creates, submitter included."""
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    spec = doc["spec"]
    if doc["kind"] == "RayJob":
        if "submitterPodTemplate" in spec:
            yield f"{name} submitter", spec["submitterPodTemplate"]
        spec = spec.get("rayClusterSpec", {})
    if doc["kind"] == "RayService":
        spec = spec["rayClusterConfig"]
    if "headGroupSpec" in spec:
        yield f"{name} head", spec["headGroupSpec"]["template"]
    for group in spec.get("workerGroupSpecs", []):
        yield f"{name} {group['groupName']}", group["template"]


def as_pod_template(label: str, template: dict[str, Any]) -> dict[str, Any]:
    """A v1 PodTemplate object wrapping ``template``, for Kubernetes' schema."""
    name = label.lower().replace("/", "-").replace(" ", "-")
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}


def ray_clusters(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The RayCluster spec(s) inside a document."""
    if doc["kind"] == "RayCluster":
        return [doc["spec"]]
    if doc["kind"] == "RayJob" and "rayClusterSpec" in doc["spec"]:
        return [doc["spec"]["rayClusterSpec"]]
    if doc["kind"] == "RayService":
        return [doc["spec"]["rayClusterConfig"]]
    return []


def _env_by_name(env: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in env or []}


def auth_env_problems(label: str, env: list[dict[str, Any]]) -> list[str]:
    """Token auth must be on, with the token read from the token Secret (never inline)."""
    by_name = _env_by_name(env)
    problems = []
    if by_name.get("RAY_AUTH_MODE", {}).get("value") != "token":
        problems.append(f"{label}: RAY_AUTH_MODE is not 'token'")
    ref = by_name.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if (ref.get("name"), ref.get("key")) != TOKEN_SECRET:
        problems.append(f"{label}: RAY_AUTH_TOKEN is not read from Secret {TOKEN_SECRET[0]}/{TOKEN_SECRET[1]}")
    return problems


def inline_secret_problems(label: str, env: list[dict[str, Any]]) -> list[str]:
    """Secret-looking variables (token, password, keys) must come from a secretKeyRef, not a literal."""
    return [f"{label}: {e['name']} has an inline value" for e in env or []
            if any(word in e["name"].upper() for word in SECRET_LIKE)
            and ("value" in e or "secretKeyRef" not in e.get("valueFrom", {}))]


def _gpu_problems(label: str, pod: dict[str, Any]) -> list[str]:
    problems = []
    for c in pod["containers"]:
        res = c.get("resources", {})
        req = res.get("requests", {}).get("nvidia.com/gpu")
        lim = res.get("limits", {}).get("nvidia.com/gpu")
        if req is None and lim is None:
            continue
        if req is None or lim is None or str(req) != str(lim) or int(req) < 1:
            problems.append(f"{label}: nvidia.com/gpu must be equal in requests and limits (got {req}/{lim})")
        if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
            problems.append(f"{label}: GPU pod without an nvidia.com/gpu toleration")
        if not pod.get("nodeSelector"):
            problems.append(f"{label}: GPU pod without a nodeSelector")
    return problems


def gpu_count(template: dict[str, Any]) -> int:
    """GPUs the pod's containers request."""
    return sum(int(c.get("resources", {}).get("requests", {}).get("nvidia.com/gpu", 0))
               for c in template["spec"]["containers"])


def pod_problems(label: str, template: dict[str, Any]) -> list[str]:
    """Non-root, token auth on every container, no inline secrets, GPU requests, mounts that exist."""
    pod = template["spec"]
    problems = []
    sc = pod.get("securityContext", {})
    if sc.get("runAsNonRoot") is not True or not sc.get("runAsUser"):
        problems.append(f"{label}: pod securityContext must set runAsNonRoot: true and a non-zero runAsUser")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        where = f"{label}/{c['name']}"
        problems += auth_env_problems(where, c.get("env"))
        problems += inline_secret_problems(where, c.get("env"))
        csc = c.get("securityContext", {})
        if csc.get("runAsUser") == 0 or csc.get("privileged") or csc.get("allowPrivilegeEscalation", True):
            problems.append(f"{where}: container may escalate privileges or run as root")
        problems += [f"{where}: mounts unknown volume {m['name']}" for m in c.get("volumeMounts", [])
                     if m["name"] not in volumes]
    return problems + _gpu_problems(label, pod)


def cluster_problems(label: str, spec: dict[str, Any]) -> list[str]:
    """The head is reachable only inside the cluster; worker group sizes are consistent."""
    problems = []
    head = spec["headGroupSpec"]
    if head.get("serviceType", "ClusterIP") != "ClusterIP":
        problems.append(f"{label}: head service type {head['serviceType']} exposes the dashboard")
    if head.get("enableIngress"):
        problems.append(f"{label}: head ingress is enabled")
    for g in spec.get("workerGroupSpecs", []):
        lo, hi, n = g["minReplicas"], g["maxReplicas"], g.get("replicas", g["minReplicas"])
        if not lo <= n <= hi:
            problems.append(f"{label} {g['groupName']}: replicas {n} outside [{lo}, {hi}]")
    if spec.get("enableInTreeAutoscaling"):
        problems += auth_env_problems(f"{label} autoscaler", spec.get("autoscalerOptions", {}).get("env"))
    return problems


def policy_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Every policy violation in a built overlay (empty list when it complies)."""
    problems = []
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "Secret":
            problems.append(f"Secret/{name}: secrets are created by hand, never shipped in a manifest")
        if kind == "Ingress":
            problems.append(f"Ingress/{name}: nothing is exposed outside the cluster")
        if kind == "Service" and doc["spec"].get("type", "ClusterIP") in ("LoadBalancer", "NodePort"):
            problems.append(f"Service/{name}: type {doc['spec']['type']} exposes it outside the cluster")
        for spec in ray_clusters(doc):
            problems += cluster_problems(f"{kind}/{name}", spec)
        if kind in ("RayCluster", "RayJob", "RayService"):
            for label, template in pod_templates(doc):
                problems += pod_problems(label, template)
    return problems


def with_change(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    """A deep copy of ``doc`` with the value at ``path`` replaced (for negative tests)."""
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out
