import pytest

from lrm_dist.config import load_config


@pytest.fixture
def make_cfg(tmp_path):
    """A pipeline config writing under tmp_path, with inline asset sources."""

    def make(sources, **assets):
        return load_config(None, [f"workdir={tmp_path / 'work'}"]).model_copy(
            update={"assets": load_config(None).assets.model_validate({"sources": sources, **assets})}
        )

    return make
