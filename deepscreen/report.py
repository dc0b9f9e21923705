"""The evidence report: one self-contained HTML page a reviewer can open anywhere.

A sortable table of every video, and for each flagged video its people (tracks), the most suspicious face
crops with their timestamps, each beside a Grad-CAM heatmap of the regions that drove the detector's score,
and a strip of score over time. Images are inline (data URIs); nothing is fetched.
"""
from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from .model import Detector
from .results import ScreenResult


@dataclass
class Evidence:
    """A face crop kept for the report (only for flagged videos, only the top few per person)."""

    track_id: int
    t: float
    score: float
    crop: np.ndarray


def _target_layer(model: nn.Module) -> nn.Module:
    """The last feature block: the last spatial map before pooling (MobileNetV2's features[-1])."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return features[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1]


def gradcam(detector: Detector, crops: list[np.ndarray]) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) of the 'fake' logit: N heatmaps in [0, 1] at crop resolution."""
    layer = _target_layer(detector.model)
    store: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("act", o))
    try:
        x = detector.to_tensor(crops)
        with torch.enable_grad():
            act_logits = detector.model(x)
            act = store["act"]
            grads = torch.autograd.grad(act_logits.sum(), act)[0]
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * act).sum(1)).detach().float().cpu().numpy()
    size = crops[0].shape[0]
    out = []
    for c in cam:
        c = cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR)
        out.append(c / c.max() if c.max() > 0 else c)
    return np.stack(out)


def _png(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _overlay(crop: np.ndarray, heat: np.ndarray) -> np.ndarray:
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (crop * 0.55 + colour * 0.45).astype(np.uint8)


def _strip(result: ScreenResult, width: int = 640, height: int = 90) -> str:
    """Score over time as inline SVG: one line per person, the threshold dashed."""
    duration = max(result.video.get("duration") or 0, max((t.last_t for t in result.tracks), default=0), 1e-6)
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    parts = [f'<svg class="strip" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<rect width="{width}" height="{height}" fill="#f6f6f6"/>']
    if result.threshold is not None:
        y = height * (1 - result.threshold)
        parts.append(f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#999" stroke-dasharray="4 3"/>')
    for k, track in enumerate(result.tracks):
        pts = " ".join(f"{width * t / duration:.1f},{height * (1 - s):.1f}"
                       for t, s in sorted(zip(track.face_times, track.face_scores)))
        parts.append(f'<polyline fill="none" stroke="{colours[k % len(colours)]}" stroke-width="2" points="{pts}">'
                     f'<title>person {track.track_id}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
th{cursor:pointer;background:#f0f0f0;user-select:none}th.sorted-asc:after{content:" \\25B2"}
th.sorted-desc:after{content:" \\25BC"}.fake{color:#b00;font-weight:600}.real{color:#070}.unknown{color:#777}
.faces{display:flex;flex-wrap:wrap;gap:12px}.face{text-align:center;font-size:12px}
.face img{width:128px;height:128px;image-rendering:auto}section{margin-top:28px}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _cell(text: str, sort: str | float | None = None, cls: str = "") -> str:
    key = "" if sort is None else str(sort)
    klass = f' class="{cls}"' if cls else ""
    return f'<td data-sort="{html.escape(key)}"{klass}>{html.escape(text)}</td>'


def write_report(path: str, results: list[ScreenResult], evidence: dict[str, list[Evidence]],
                 detector: Detector | None) -> None:
    """Write the HTML page. `evidence` maps a flagged video's path to its kept face crops."""
    rows = []
    for i, r in enumerate(results):
        anchor = f"v{i}"
        name = os.path.basename(r.path)
        link = f'<a href="#{anchor}">{html.escape(name)}</a>' if r.verdict == "fake" else html.escape(name)
        rows.append("<tr>" + f'<td data-sort="{html.escape(name)}">{link}</td>'
                    + _cell(r.verdict, r.verdict, r.verdict)
                    + _cell("" if r.score is None else f"{r.score:.3f}", -1 if r.score is None else r.score)
                    + _cell(str(len(r.tracks)), len(r.tracks))
                    + _cell(f"{r.video.get('duration', 0):.1f} s" if r.video else "", r.video.get("duration", 0))
                    + _cell(r.status + (f": {r.message}" if r.message else ""), r.status) + "</tr>")
    # A copy's crops are its original's (screened once, in this run or an earlier one).
    sections = [_flagged_section(f"v{i}", r, evidence.get(r.path) or evidence.get(r.duplicate_of or "", []), detector)
                for i, r in enumerate(results) if r.verdict == "fake"]
    flagged = sum(r.verdict == "fake" for r in results)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepscreen report</title><style>{_STYLE}</style></head>
<body><h1>deepscreen report</h1>
<p>{len(results)} videos, {flagged} flagged. Click a column to sort.</p>
<table class="sortable" id="videos"><thead><tr><th>video</th><th>verdict</th><th>score</th><th>people</th>
<th>duration</th><th>status</th></tr></thead><tbody>
{''.join(rows)}
</tbody></table>
{''.join(sections)}
<script>{_SCRIPT}</script></body></html>
"""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, path)


def _flagged_section(anchor: str, r: ScreenResult, kept: list[Evidence], detector: Detector | None) -> str:
    tracks = "".join(f"<tr><td>{t.track_id}</td><td>{t.score:.3f}</td><td>{t.faces}</td>"
                     f"<td>{t.first_t:.2f}–{t.last_t:.2f} s</td>"
                     f"<td>{', '.join(f'{x:.2f} s' for x in t.top_times)}</td></tr>" for t in r.tracks)
    faces = ""
    if kept and detector is not None:
        heat = gradcam(detector, [e.crop for e in kept])
        faces = '<div class="faces">' + "".join(
            f'<div class="face"><img alt="face at {e.t:.2f} s" src="{_png(e.crop)}">'
            f'<img alt="heatmap at {e.t:.2f} s" src="{_png(_overlay(e.crop, h))}">'
            f"<br>person {e.track_id}, {e.t:.2f} s, score {e.score:.3f}</div>"
            for e, h in zip(kept, heat)) + "</div>"
    elif not kept:
        original = f" (same content as {html.escape(r.duplicate_of)})" if r.duplicate_of else ""
        faces = f"<p>No face crops kept for this video{original}: it was screened in an earlier run.</p>"
    return f"""<section id="{anchor}"><h2>{html.escape(r.path)}</h2>
<p>score {r.score:.3f} (threshold {r.threshold}), {len(r.tracks)} people, sha256 {r.sha256}</p>
<table><thead><tr><th>person</th><th>score</th><th>faces</th><th>seen</th><th>most suspicious at</th></tr></thead>
<tbody>{tracks}</tbody></table>
<p>Score over time (dashed: threshold)</p>{_strip(r)}
<p>Most suspicious faces, each with the Grad-CAM heatmap of what drove the score</p>{faces}</section>"""
