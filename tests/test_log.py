"""The Ray worker setup hook: silences only known-harmless noise and never starts a Ray itself."""

import sys
import warnings

import pytest


def test_quiet_ray_internals_filters_torch_deprecations_only_and_starts_no_ray():
    import ray

    from lrm_dist.log import quiet_ray_internals

    assert not ray.is_initialized()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet_ray_internals()
        warnings.warn("`torch.distributed.all_gather_into_tensor` is deprecated. Please use ...", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]
    assert not ray.is_initialized()


def test_quiet_prints_holds_back_library_output_unless_verbose(capfd, monkeypatch):
    from lrm_dist.log import quiet_prints

    monkeypatch.setenv("LRM_DIST_VERBOSE", "0")
    with quiet_prints():
        print("DeepSpeed op built successfully")
        print("Loading checkpoint shards", file=sys.stderr)
    with pytest.raises(ValueError, match="still raised"), quiet_prints():
        raise ValueError("still raised")
    assert capfd.readouterr() == ("", "")
    monkeypatch.setenv("LRM_DIST_VERBOSE", "1")
    with quiet_prints():
        print("kept when verbose")
    assert capfd.readouterr().out == "kept when verbose\n"


def test_quiet_worker_lines_drops_only_the_known_harmless_lines_unless_verbose(monkeypatch):
    """Ray's printer of workers' lines (wrapped where Ray registers it) loses the PreemptionWatcher line, nothing else."""
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    from lrm_dist.log import quiet_worker_lines

    harmless = ("[2026-12-01 17:23:03,577 E 15254 15283] core_worker.cc:2465: Actor with class name: 'PreemptionWatcher' "
                "and ID: '39be94e0d72b4644d07cee4d01000000' has constructor arguments in the object store and "
                "max_restarts > 0. If the arguments in the object store go out of scope or are lost, the actor restart "
                "will fail. See https://github.com/ray-project/ray/issues/53727 for more details.")
    kept = "[2026-12-01 17:23:04 E 15254 15283] core_worker.cc:1234: Failed to connect to the raylet"
    printed: list[list[str]] = []
    dispatcher.add_handler("ray_print_logs", lambda data: printed.append(data["lines"]))
    try:
        monkeypatch.setenv("LRM_DIST_VERBOSE", "1")
        quiet_worker_lines()
        dispatcher.emit({"lines": [harmless], "pid": 1, "is_err": True})
        assert printed == [[harmless]]  # verbose: everything
        monkeypatch.setenv("LRM_DIST_VERBOSE", "0")
        quiet_worker_lines()
        quiet_worker_lines()  # idempotent: wrapped once
        assert [name for name, _ in dispatcher.handlers].count("ray_print_logs") == 1
        dispatcher.emit({"lines": [harmless, kept, "step 25/360"], "pid": 1, "is_err": True})
        dispatcher.emit({"lines": [harmless], "pid": 1, "is_err": True})  # nothing left: not printed at all
        assert printed == [[harmless], [kept, "step 25/360"]]
    finally:
        dispatcher.remove_handler("ray_print_logs")
