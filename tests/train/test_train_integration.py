"""Ray Train + DeepSpeed on a real multi-node local Ray cluster (head + 2 worker nodes on 127.0.0.1).

Uses the real tiny LRM and SYNTHETIC shards written by the real shard writer (tests/train/synthetic.py).
One uninterrupted run is the reference; a second run loses a worker right after its step-2
checkpoint (fault injection), is restarted by FailureConfig and must end bit-identical to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lrm_dist.train.checkpoint import safe_load

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster():
    import ray
    import ray._private.ray_constants as ray_constants
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    # ray.init(address="127.0.0.1:port") rewrites loopback to the host's routable IP, where the
    # loopback-bound GCS does not listen; with this flag off Ray resolves "localhost" to 127.0.0.1.
    saved, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, _node_ip_address="127.0.0.1")
    try:
        yield c, nodes
    finally:
        ray.shutdown()
        c.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _config(workdir: Path, shards: list[Path], run_name: str, max_steps: int = 3, **extra):
    from lrm_dist.config import load_config

    overrides = {
        "workdir": str(workdir), "shards.holdout_fraction": 0, "train.run_name": run_name, "train.num_workers": 2, "train.max_steps": max_steps,
        "train.micro_batch_size": 2, "train.checkpoint_every": 2, "train.log_every": 1, "train.image_every": 2,
        "train.zero_stage": 1, "train.warmup_steps": 1, "train.lr": 1e-3, "train.max_failures": 1,
        "train.sample.supervision_views": 2,
        "train.sample.render_res_low": 24, "train.sample.render_res_high": 32, "train.sample.patch_size": 16,
        "train.data.shards": str(shards[0].parent), "train.data.shuffle_buffer": 2, "train.data.loader_workers": 0, "train.loss.mask": 0.5,
        "train.lift_warmup_steps": 1, "train.loss.source_layers": 1.0,  # step 1 trains the lift's layers alone
        **extra,
    }
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


def _tensors(obj, prefix=""):
    """Every tensor (and number) in a nested checkpoint structure, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _tensors(val, f"{prefix}/{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in _tensors(val, f"{prefix}/{i}").items()}
    return {}


def _optimizer_states(checkpoint: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted((checkpoint / "ds").glob("*optim_states.pt")):
        out.update({f"{f.name}{k}": v for k, v in _tensors(safe_load(f)).items()})
    return out


@pytest.fixture(scope="module")
def reference(cluster, synthetic_shards, tmp_path_factory):
    from lrm_dist.train import train

    workdir = tmp_path_factory.mktemp("train-ref")
    return workdir, train(_config(workdir, synthetic_shards, "ref"))


def test_multinode_run_checkpoints_every_rank_and_exports(reference):
    from lrm_dist.model.config import LRMConfig
    from lrm_dist.model.lrm import LRM
    from lrm_dist.model.pretrained import from_pretrained
    from lrm_dist.train.checkpoint import consolidated_state_dict, state_name

    workdir, result = reference
    assert result.checkpoint.name == "checkpoint_00000003"
    assert sorted(p.name for p in result.run_dir.glob("checkpoint_0*")) == ["checkpoint_00000002", "checkpoint_00000003"]
    states = [safe_load(result.checkpoint / state_name(r)) for r in (0, 1)]
    assert [s["step"] for s in states] == [3, 3] and [s["batches"] for s in states] == [3, 3]
    assert states[0]["node_id"] != states[1]["node_id"]  # the two ranks ran on different nodes
    assert sorted(p.name for p in (result.checkpoint / "ds").glob("zero_pp_rank_*")) == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert result.metrics["step"] == 3 and np.isfinite(result.metrics["loss"])
    assert list(result.tensorboard_dir.glob("events.out.tfevents.*"))

    exported = from_pretrained(result.export_dir).eval()
    trained = consolidated_state_dict(result.checkpoint)
    assert exported.state_dict().keys() == trained.keys()
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in trained.items())
    ckpt_model = LRM(LRMConfig.model_validate(exported.config.hf_dict()))
    ckpt_model.load_state_dict(trained)
    ckpt_model.eval()
    torch.manual_seed(0)
    image, cam = torch.rand(1, 3, 56, 56), torch.rand(1, 16)
    c2w = torch.eye(4).view(1, 1, 4, 4).clone()
    c2w[..., 1, 3] = -2.0
    c2w[..., :3, :3] = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    intr = torch.tensor([0.9, 0.9, 0.5, 0.5]).view(1, 1, 4)
    with torch.no_grad():
        a = exported.render(exported.forward_planes(image, cam), c2w, intr, 8, 8)
        b = ckpt_model.render(ckpt_model.forward_planes(image, cam), c2w, intr, 8, 8)
    for key in ("rgb", "opacity", "depth"):
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), key
    # training moved the weights away from the seeded initialisation
    torch.manual_seed(0)
    init = LRM(exported.config)
    assert not torch.equal(init.pos_embed, exported.pos_embed)


def test_worker_killed_after_checkpoint_resumes_identically(reference, synthetic_shards, tmp_path_factory):
    from lrm_dist.train import train
    from lrm_dist.train.checkpoint import consolidated_state_dict, state_name

    _, ref = reference
    workdir = tmp_path_factory.mktemp("train-fault")
    result = train(_config(workdir, synthetic_shards, "fault", **{"train.fault_at_step": 2}))
    assert (result.run_dir / "fault_injected_step2").is_file()  # a worker really died after step 2
    assert result.checkpoint.name == "checkpoint_00000003"
    for r in (0, 1):
        state = safe_load(result.checkpoint / state_name(r))
        assert state["step"] == 3 and state["batches"] == 3
    ours, theirs = consolidated_state_dict(result.checkpoint), consolidated_state_dict(ref.checkpoint)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    opt_ours, opt_ref = _optimizer_states(result.checkpoint), _optimizer_states(ref.checkpoint)
    assert opt_ours.keys() == opt_ref.keys() and len(opt_ours) > 4
    for key in opt_ours:
        assert torch.equal(opt_ours[key], opt_ref[key]), key


def test_rerun_with_the_same_name_continues_from_the_last_checkpoint(reference, synthetic_shards):
    from lrm_dist.train import train
    from lrm_dist.train.checkpoint import state_name

    workdir, _ = reference
    result = train(_config(workdir, synthetic_shards, "ref", max_steps=4))
    assert result.checkpoint.name == "checkpoint_00000004"
    state = safe_load(result.checkpoint / state_name(0))
    assert state["step"] == 4 and state["batches"] == 4


def test_time_budget_stops_every_rank_at_one_step_with_a_checkpoint(cluster, synthetic_shards, tmp_path):
    from lrm_dist.train import train

    # 1e-4 minutes (6 ms) is over after the first step: both ranks stop there, far before max_steps.
    result = train(_config(tmp_path, synthetic_shards, "budget", max_steps=50, **{"train.max_minutes": 1e-4}))
    assert result.checkpoint.name == "checkpoint_00000001"
    progress = (result.checkpoint / "progress.json").read_text()
    assert '"step": 1' in progress


def test_ray_data_reader_gives_the_same_batch_layout(cluster, synthetic_shards, small_recipe):
    from lrm_dist.train.data import ray_dataset, webdataset_batches

    urls = [str(p) for p in synthetic_shards]
    ray_batch = next(iter(ray_dataset(urls, small_recipe, 28).iter_torch_batches(batch_size=2)))
    wds_batch = next(webdataset_batches(urls, 0, 1, 0, 2, small_recipe, 28, seed=0, shuffle_buffer=2))
    wds_batch.pop("epoch")
    assert ray_batch.keys() == wds_batch.keys()
    for key in wds_batch:
        assert ray_batch[key].shape == wds_batch[key].shape and ray_batch[key].dtype == wds_batch[key].dtype, key
