"""The training loop's progress line."""

from lrm_dist.train.loop import _progress_line


def test_progress_line_says_how_far_and_how_long_is_left():
    line = _progress_line(25, 300, {"loss/total": 0.5, "loss/mask": 0.2, "time/step_s": 0.8, "lr": 1e-3})
    assert line.startswith("step 25/300 (8%, eta 3m40s) | loss 0.5000 (mask 0.2)")
    assert "eta 1h06m" in _progress_line(0, 1000, {"time/step_s": 4.0})


def test_missing_members_are_counted_only_for_active_terms(caplog):
    """A batch lacking normal maps counts as data/no_normal (warned once) only while the normal term is on."""
    import torch

    from lrm_dist.train.config import LossConfig
    from lrm_dist.train.loop import _MissingMembers

    batch = {"render_image": torch.zeros(2, 1, 3, 4, 4), "render_depth_mask": torch.ones(2, 1, 1, 4, 4),
             "render_normal_mask": torch.zeros(2, 1, 1, 4, 4), "occupancy_mask": torch.tensor([[1.0], [0.0]])}
    off = _MissingMembers(0, LossConfig(normal=0.0)).check(batch)
    assert off == {"data/no_depth": 0.0, "data/no_occupancy": 0.5}
    on = _MissingMembers(0, LossConfig(normal=1.0, occupancy=0.0, source_layers=0.0))
    assert on.check(batch) == {"data/no_depth": 0.0, "data/no_normal": 1.0}
    on.check(batch)
    assert caplog.text.count("no normal supervision") == 1


def test_zero_width_mask_counts_as_missing(caplog):
    """An occupancy mask without points (train.sample.occupancy_points=0) is a missing member, not a crash."""
    import torch

    from lrm_dist.train.config import LossConfig
    from lrm_dist.train.loop import _MissingMembers

    batch = {"render_image": torch.zeros(2, 1, 3, 4, 4), "occupancy_mask": torch.zeros(2, 0)}
    missing = _MissingMembers(0, LossConfig(depth=0.0, occupancy=1.0))
    assert missing.check(batch) == {"data/no_occupancy": 1.0}
    assert caplog.text.count("no occupancy supervision") == 1


def test_lift_terms_without_a_lift_are_named():
    from lrm_dist.model.config import SIZES
    from lrm_dist.model.lrm import LRM
    from lrm_dist.train.config import LossConfig
    from lrm_dist.train.loop import _terms_without_a_lift

    plain = LRM(SIZES["tiny"].model_copy(update={"image_lift": False}))
    lifted = LRM(SIZES["tiny"].model_copy(update={"image_lift": True}))
    loss = LossConfig(source_layers=1.0)
    assert _terms_without_a_lift(loss, plain) == ["source_layers"]
    assert _terms_without_a_lift(loss, lifted) == []
    assert _terms_without_a_lift(LossConfig(source_depth=0.5, source_layers=1.0), plain) == ["source_depth", "source_layers"]
