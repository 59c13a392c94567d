"""Tampered checkpoints never run code: real DeepSpeed checkpoints (ZeRO 0-3, one gloo process) with a
pickled payload in the trainer state or in DeepSpeed's own files are refused on resume and export, in one
line naming the file (``lrm-dist train`` ends with it, exit 2); clean ones still load (bit-exact resume:
test_deepspeed_stages.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM
from lrm_dist.model.pretrained import ModelFileError, from_pretrained
from lrm_dist.train.checkpoint import (
    UnsafeCheckpoint, _deepspeed_types, consolidated_state_dict, load_checkpoint, safe_load, save_checkpoint,
    state_name, verify_folder,
)
from lrm_dist.train.export import export_checkpoint
from tests.hostile_pickle import Payload
from tests.train.test_deepspeed_stages import _engine, process_group  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _checkpoint(stage: int, folder: Path) -> Path:
    engine, model = _engine(stage)
    save_checkpoint(engine, folder, 0, {"step": 0, "batches": 0, "epoch": 0}, model.config.hf_dict())
    return folder


def _tamper(path: Path, marker: Path) -> None:
    """Add the payload to a real checkpoint file, keeping everything else in it."""
    obj = safe_load(path)
    obj["extra"] = Payload(marker)
    torch.save(obj, path)


def _assert_refusal(exc: pytest.ExceptionInfo, path: Path, marker: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message == (f"checkpoint {path}: refuses to load 'posix.system' "
                       "(only tensors and DeepSpeed's own types are loaded)")
    assert not marker.exists()


@pytest.fixture(scope="module")
def clean(process_group, tmp_path_factory) -> dict[int, Path]:  # noqa: F811
    root = tmp_path_factory.mktemp("clean")
    return {stage: _checkpoint(stage, root / f"zero{stage}") for stage in (0, 1, 2, 3)}


def test_the_allow_list_is_exactly_what_deepspeed_writes(clean):
    written = set()
    for folder in clean.values():
        verify_folder(folder)
        for path in folder.rglob("*.pt"):
            written |= set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert written == {f"{t.__module__}.{t.__qualname__}" for t in _deepspeed_types()}
    state = safe_load(clean[2] / "ds" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    assert int(state["optimizer_state_dict"]["zero_stage"]) == 2


def test_the_payload_is_live(clean, tmp_path):
    """The control: the tampered file does run its payload when unpickled freely, as DeepSpeed would."""
    path, marker = tmp_path / "state.pt", tmp_path / "ran"
    shutil.copy(clean[0] / state_name(0), path)
    _tamper(path, marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_tampered_trainer_state_is_refused_on_resume(clean, tmp_path):
    folder, marker = tmp_path / "ckpt", tmp_path / "ran"
    shutil.copytree(clean[1], folder)
    _tamper(folder / state_name(0), marker)
    engine, _ = _engine(1)
    with pytest.raises(UnsafeCheckpoint) as exc:
        load_checkpoint(engine, folder, 0)
    _assert_refusal(exc, folder / state_name(0), marker)


@pytest.mark.parametrize("stage,name", [
    (0, "mp_rank_00_model_states.pt"),
    (2, "mp_rank_00_model_states.pt"),
    (2, "zero_pp_rank_0_mp_rank_00_optim_states.pt"),
    (3, "zero_pp_rank_0_mp_rank_00_model_states.pt"),
])
def test_tampered_deepspeed_file_is_refused_on_resume_and_export(clean, tmp_path, stage, name):
    folder, marker = tmp_path / "ckpt", tmp_path / "ran"
    shutil.copytree(clean[stage], folder)
    _tamper(folder / "ds" / name, marker)
    engine, _ = _engine(stage)
    with pytest.raises(UnsafeCheckpoint) as exc:
        load_checkpoint(engine, folder, 0)
    _assert_refusal(exc, folder / "ds" / name, marker)
    with pytest.raises(UnsafeCheckpoint) as exc:
        consolidated_state_dict(folder)
    _assert_refusal(exc, folder / "ds" / name, marker)
    with pytest.raises(UnsafeCheckpoint) as exc:
        export_checkpoint(folder, tmp_path / "model")
    _assert_refusal(exc, folder / "ds" / name, marker)
    assert not (tmp_path / "model").exists()


def test_a_damaged_file_is_refused_in_one_line(clean, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(clean[0], folder)
    (folder / "ds" / "mp_rank_00_model_states.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UnsafeCheckpoint) as exc:
        consolidated_state_dict(folder)
    message = str(exc.value)
    assert message.startswith(f"checkpoint {folder / 'ds' / 'mp_rank_00_model_states.pt'}: not a loadable torch file (")
    assert "\n" not in message


@pytest.mark.parametrize(("content", "error", "message"), [
    (None, FileNotFoundError, "checkpoint {folder}: no lrm_config.json"),
    (b"{not json", ModelFileError, "{folder}/lrm_config.json: not valid JSON ("),
    (b"[1, 2]", ModelFileError, "{folder}/lrm_config.json: holds a list, not a JSON object"),
])
def test_export_refuses_a_checkpoint_config_in_one_line(clean, tmp_path, content, error, message):
    folder = tmp_path / "ckpt"
    shutil.copytree(clean[0], folder)
    if content is None:
        (folder / "lrm_config.json").unlink()
    else:
        (folder / "lrm_config.json").write_bytes(content)
    with pytest.raises(error) as exc:
        export_checkpoint(folder, tmp_path / "model")
    assert str(exc.value).startswith(message.format(folder=folder)) and "\n" not in str(exc.value)
    assert not (tmp_path / "model").exists()


def test_clean_checkpoints_load_and_export(clean, tmp_path):
    torch.manual_seed(0)  # _engine's seed: nothing was trained, so the saved weights are the initial ones
    initial = LRM(SIZES["tiny"]).state_dict()
    for stage, folder in clean.items():
        engine, _ = _engine(stage)
        assert load_checkpoint(engine, folder, 0)["step"] == 0
        weights = consolidated_state_dict(folder)
        assert weights.keys() == initial.keys()
        assert all(torch.equal(weights[k], v) for k, v in initial.items()), stage
    exported = from_pretrained(export_checkpoint(clean[3], tmp_path / "model"))
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in initial.items())


def test_lrm_dist_train_refuses_a_tampered_resume_in_one_line(synthetic_shards, tmp_path):
    """The real CLI on a local Ray: a run, its trainer state tampered, then the resume is refused (exit 2)."""
    sets = {
        "workdir": tmp_path / "work", "shards.holdout_fraction": 0, "ray.num_cpus": 2, "train.run_name": "r",
        "train.micro_batch_size": 1, "train.checkpoint_every": 1, "train.max_failures": 0,
        "train.sample.supervision_views": 2, "train.sample.render_res_low": 16, "train.sample.render_res_high": 16,
        "train.sample.patch_size": 16, "train.data.shards": synthetic_shards[0].parent,
        "train.data.shuffle_buffer": 1, "train.data.loader_workers": 0,
    }

    def cli(max_steps: int) -> subprocess.CompletedProcess:
        args = [f"--set={k}={v}" for k, v in {**sets, "train.max_steps": max_steps}.items()]
        return subprocess.run([sys.executable, "-m", "lrm_dist.cli", "train", *args], capture_output=True, text=True,
                              timeout=500, cwd=REPO)

    first = cli(1)
    assert first.returncode == 0, first.stderr[-2000:]
    state = tmp_path / "work" / "train" / "ray" / "r" / "checkpoint_00000001" / state_name(0)
    marker = tmp_path / "ran"
    _tamper(state, marker)
    resumed = cli(2)
    assert resumed.returncode == 2
    errors = [line for line in resumed.stderr.splitlines() if line.startswith("lrm-dist train: error: ")]
    assert errors == [f"lrm-dist train: error: checkpoint {state}: refuses to load 'posix.system' "
                      "(only tensors and DeepSpeed's own types are loaded)"]
    assert not marker.exists()
