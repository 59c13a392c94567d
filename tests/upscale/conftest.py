"""Shared fixtures of the upscale tests."""

from __future__ import annotations

import pytest
from upscale_statedicts import srvgg_state


@pytest.fixture
def small_srvgg_file(tmp_path):
    """A 3-conv SRVGG x4 (receptive radius 5 px) saved as safetensors: fast on CPU."""
    from safetensors.torch import save_file

    path = tmp_path / "small_srvgg.safetensors"
    save_file(srvgg_state(num_conv=3, num_feat=16), str(path))
    return path
