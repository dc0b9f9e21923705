"""Early exit: passes over every 8th, then every 4th sampled frame end the look only when the answer is clear."""
from __future__ import annotations

import pytest
from conftest import load_script

from deepscreen import Screener, media
from deepscreen.model import update_profile
from deepscreen.screener import EARLY_PASSES


@pytest.fixture(scope="module")
def full(tiny_weights, face_clip):
    return Screener(weights=tiny_weights, device="cpu", frames=32, early_exit=False).screen(str(face_clip))


def test_a_clear_first_pass_stops_the_look_and_the_record_says_so(tiny_weights, face_clip, full):
    # Threshold 1: any score is far below it, so the first pass (4 of 32 frames) settles the verdict.
    early = Screener(weights=tiny_weights, device="cpu", frames=32, threshold=1.0).screen(str(face_clip))
    assert early.status == "ok" and early.stopped == "early" and early.verdict == "real"
    assert early.frames_sampled == 32 // EARLY_PASSES[0][0]
    assert {t for tr in early.tracks for t in tr.face_times} < {t for tr in full.tracks for t in tr.face_times}
    assert full.stopped == "end" and full.frames_sampled == 32


def test_an_unclear_first_pass_looks_at_every_frame_and_finds_what_a_full_look_finds(tiny_weights, face_clip, full):
    first = Screener(weights=tiny_weights, device="cpu", frames=32, threshold=1.0).screen(str(face_clip))
    # A threshold right at the first pass's score: neither pass is clear (the tiny model scores every face about
    # alike), so every frame is looked at.
    unclear = Screener(weights=tiny_weights, device="cpu", frames=32, threshold=first.score).screen(str(face_clip))
    assert unclear.stopped == "end" and unclear.frames_sampled == 32
    assert [tr.face_times for tr in unclear.tracks] == [tr.face_times for tr in full.tracks]
    for a, b in zip(unclear.tracks, full.tracks):
        assert a.box == b.box and a.face_scores == pytest.approx(b.face_scores, abs=1e-5)
    assert unclear.score == pytest.approx(full.score, abs=1e-5)


def test_no_first_pass_on_few_frames_or_without_faces(tiny_weights, face_clip, no_face_clip):
    s = Screener(weights=tiny_weights, device="cpu", frames=8, threshold=1.0)
    assert s.screen(str(face_clip)).stopped == "end"
    none = Screener(weights=tiny_weights, device="cpu", frames=32, threshold=1.0).screen(str(no_face_clip))
    assert none.status == "no_face" and none.frames_sampled == 32


def test_the_margin_check_rebuilds_the_first_pass_from_a_full_look(tiny_weights, face_clip, full):
    # scripts/early_exit_check.py chooses the margins from full looks alone: its first-pass score must be the
    # one a real first pass gives.
    check = load_script("early_exit_check")
    early = Screener(weights=tiny_weights, device="cpu", frames=32, threshold=1.0).screen(str(face_clip))
    assert check.pass_score(full, 32, EARLY_PASSES[0][0]) == pytest.approx(early.score, abs=1e-5)
    assert check.pass_score(full, 8, 4) is None  # too few frames for a pass


def test_weights_carry_their_own_margins(tmp_path, tiny_weights, face_clip):
    # Logits spread differently for each detector: margins in the profile replace the defaults.
    wide = tmp_path / "wide.pt"
    wide.write_bytes(tiny_weights.read_bytes())
    update_profile(wide, early_exit_margins=[100.0, 100.0])
    s = Screener(weights=wide, device="cpu", frames=32, threshold=1.0)
    assert s.early_passes == ((EARLY_PASSES[0][0], 100.0), (EARLY_PASSES[1][0], 100.0))
    assert s.screen(str(face_clip)).stopped == "end"  # no pass is 100 logits from anything
    assert Screener(weights=tiny_weights, device="cpu").early_passes == EARLY_PASSES


def test_a_long_clip_looks_at_its_early_frames_first_and_still_finds_what_a_full_look_finds(
        tiny_weights, face_clip, monkeypatch):
    # Long clips are sampled by seeking, early passes' frames first; the frames held back then arrive out of
    # time order with respect to them, and the full look must still search them in time order.
    monkeypatch.setattr(media, "SEEK_AFTER_S", 0.0)
    full = Screener(weights=tiny_weights, device="cpu", frames=32, early_exit=False).screen(str(face_clip))
    early = Screener(weights=tiny_weights, device="cpu", frames=32, threshold=1.0).screen(str(face_clip))
    assert early.stopped == "early" and early.frames_sampled == 32 // EARLY_PASSES[0][0]
    first = early.score
    unclear = Screener(weights=tiny_weights, device="cpu", frames=32, threshold=first).screen(str(face_clip))
    assert unclear.stopped == "end" and unclear.frames_sampled == 32
    assert [tr.face_times for tr in unclear.tracks] == [tr.face_times for tr in full.tracks]
    for a, b in zip(unclear.tracks, full.tracks):
        assert a.box == b.box and a.face_scores == pytest.approx(b.face_scores, abs=1e-5)
    assert unclear.score == pytest.approx(full.score, abs=1e-5)
