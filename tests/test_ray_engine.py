"""The Ray Data engine gives the local engine's records, on a small local Ray cluster (skipped without Ray)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, about its own settings

from deepscreen.model import ModelError  # noqa: E402
from deepscreen.ray_engine import RayEngineError, screen_with_ray  # noqa: E402
from deepscreen.screener import RunStats, Screener  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                     logging_level="warning")
        except Exception as e:  # noqa: BLE001 - Ray's own start-up (its agents get 30 s on an overloaded machine)
            ray.shutdown()
            pytest.skip(f"could not start a local Ray cluster: {e}")
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, face_clip, no_face_clip):
    d = tmp_path_factory.mktemp("ray-inbox")
    bad = d / "notes.mp4"
    bad.write_text("not a video\n" * 50)
    return [str(face_clip), str(no_face_clip), str(bad)]


@pytest.fixture(scope="module")
def kwargs(tiny_weights):
    return {"weights": str(tiny_weights), "device": "cpu", "frames": 4}


@pytest.fixture(scope="module")
def ray_records(cluster, inputs, kwargs):
    stats = RunStats()
    records = list(screen_with_ray(inputs, kwargs, batch_size=2, stats=stats))
    assert stats.resumed == 0 and stats.duplicates == 0
    return sorted(records, key=lambda r: r.path)


def _without_timings(r):
    d = r.to_dict()
    assert d.pop("timings")  # every record has some
    return d


def test_same_records_as_the_local_engine(ray_records, inputs, kwargs):
    local = sorted(Screener(**kwargs).screen_many(inputs), key=lambda r: r.path)
    assert [r.path for r in ray_records] == sorted(inputs)
    assert [r.status for r in ray_records] == [r.status for r in local]
    assert {r.status for r in ray_records} == {"ok", "no_face", "unsupported"}
    for got, want in zip(ray_records, local):
        assert _without_timings(got) == _without_timings(want), got.path
    face = next(r for r in ray_records if r.status == "ok")
    assert face.tracks and face.tracks[0].face_times and face.video["codec"] == "h264"
    assert {"probe", "decode", "detect", "score", "total"} <= set(face.timings)


def test_resume_and_duplicates_across_batches(cluster, ray_records, inputs, kwargs, tmp_path, monkeypatch):
    face = inputs[0]
    copy = tmp_path / "copy.mp4"
    shutil.copy(face, copy)
    monkeypatch.chdir(tmp_path)  # relative paths: actors resolve them against the driver's cwd, records keep them
    junk = ["junk1.mp4", "junk2.mp4"]
    for j in junk:
        (tmp_path / j).write_bytes(b"\x00garbage" * 100)
    paths = [face, str(copy), *junk]
    stats = RunStats()
    # batch_size=1: the two junk copies are screened in different batches, so only the driver can pair them.
    got = {r.path: r for r in screen_with_ray(paths, kwargs, batch_size=1, previous=ray_records, stats=stats)}
    assert set(got) == set(paths[1:])  # the face clip is already recorded: resumed, no record
    assert got[str(copy)].duplicate_of == face and got[str(copy)].score == ray_records[0].score
    assert got[str(copy)].message.startswith(f"same content as {face}")
    first, second = sorted((got[j] for j in junk), key=lambda r: r.duplicate_of is not None)
    assert first.duplicate_of is None and first.status == "unsupported"
    assert second.duplicate_of == first.path and second.status == "unsupported"
    assert (stats.resumed, stats.duplicates) == (1, 2)


def test_bad_weights_raise_model_error(cluster, inputs, tmp_path):
    with pytest.raises(ModelError, match="weights not found"):
        list(screen_with_ray(inputs[:1], {"weights": str(tmp_path / "nope.pt"), "device": "cpu"}))


def test_cuda_without_gpus_is_refused(cluster, inputs, kwargs):
    if ray.cluster_resources().get("GPU"):
        pytest.skip("this cluster has a GPU")
    with pytest.raises(RayEngineError, match="no GPU"):
        list(screen_with_ray(inputs[:1], {**kwargs, "device": "cuda"}))


def test_missing_ray_gives_an_install_hint(monkeypatch, inputs, kwargs):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayEngineError, match=r"deepscreen\[ray\]"):
        list(screen_with_ray(inputs[:1], kwargs))


def test_ray_is_not_imported_unless_used():
    code = "import sys, deepscreen.cli, deepscreen.ray_engine; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_engine_ray_writes_the_local_engines_records(cluster, inputs, tiny_weights, tmp_path):
    import json

    from click.testing import CliRunner

    from deepscreen.cli import main

    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        res = CliRunner().invoke(main, ["scan", *inputs, "-o", str(out), "--weights", str(tiny_weights),
                                        "--frames", "4", "--device", "cpu", "--engine", engine])
        assert res.exit_code == 0, res.output
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        outs[engine] = sorted(({k: v for k, v in r.items() if k != "timings"} for r in recs), key=lambda r: r["path"])
    assert outs["ray"] == outs["local"] and len(outs["ray"]) == 3


def test_resume_with_relative_paths_after_a_touch(cluster, inputs, kwargs, tmp_path, monkeypatch):
    """Actors screen absolute paths; a file recorded under its relative path is still the same file."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(inputs[0], tmp_path / "rel.mp4")
    [first] = screen_with_ray(["rel.mp4"], kwargs)
    assert first.path == "rel.mp4" and first.status == "ok"
    st = os.stat("rel.mp4")
    os.utime("rel.mp4", (st.st_atime, st.st_mtime + 60))  # copied again, say: only the hash can tell
    stats = RunStats()
    assert list(screen_with_ray(["rel.mp4"], kwargs, previous=[first], stats=stats)) == []
    assert stats.resumed == 1
