"""The training loop's progress line."""

from lrm_dist.train.loop import _progress_line


def test_progress_line_says_how_far_and_how_long_is_left():
    line = _progress_line(25, 300, {"loss/total": 0.5, "loss/mask": 0.2, "time/step_s": 0.8, "lr": 1e-3})
    assert line.startswith("step 25/300 (8%, eta 3m40s) | loss 0.5000 (mask 0.2)")
    assert "eta 1h06m" in _progress_line(0, 1000, {"time/step_s": 4.0})
