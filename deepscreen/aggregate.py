"""From face scores to a person's score to a video's score.

- A track (one person) scores the mean of the top half of its face scores: one odd frame neither makes nor
  breaks a person, yet a manipulation present in only part of the clip still shows.
- A video scores the maximum over its tracks: a video is fake if any person in it is. Tracks seen in fewer
  frames than `min(MIN_TRACK_FACES, longest track)` are reported but do not count towards the video score,
  so one spurious detection (a face on a poster, a false positive) cannot decide the verdict alone.
"""
from __future__ import annotations

import math

import numpy as np

from .faces import Face
from .results import TrackResult

MIN_TRACK_FACES = 3
TOP_TIMES = 3


def track_score(scores: list[float] | np.ndarray) -> float:
    """Mean of the top half (rounded up) of the face scores."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    return float(s[: math.ceil(len(s) / 2)].mean())


def build_tracks(faces: list[Face], scores: np.ndarray, frame_scale: float = 1.0) -> list[TrackResult]:
    """Group scored faces by track id; boxes are reported in the video's displayed pixels."""
    by_track: dict[int, list[int]] = {}
    for i, f in enumerate(faces):
        by_track.setdefault(f.track_id, []).append(i)
    tracks = []
    for track_id, idx in sorted(by_track.items()):  # ids follow first appearance (faces.link_tracks)
        s = [float(scores[i]) for i in idx]
        times = [faces[i].t for i in idx]
        top = sorted(range(len(s)), key=lambda k: -s[k])[:TOP_TIMES]
        box = np.median(np.stack([faces[i].box for i in idx]), axis=0) / frame_scale
        details = [faces[i].detail for i in idx if faces[i].detail is not None]
        tracks.append(TrackResult(track_id=track_id, score=round(track_score(s), 6), faces=len(idx),
                                  first_t=min(times), last_t=max(times), top_times=[times[k] for k in top],
                                  face_scores=[round(x, 6) for x in s], face_times=times,
                                  box=[round(float(v), 1) for v in box],
                                  detail=round(float(np.median(details)), 2) if details else None))
    return tracks


def video_score(tracks: list[TrackResult]) -> float | None:
    """Max over the tracks long enough to count; None when there is no face at all."""
    if not tracks:
        return None
    need = min(MIN_TRACK_FACES, max(t.faces for t in tracks))
    return max(t.score for t in tracks if t.faces >= need)
