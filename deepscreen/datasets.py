"""Labelled video data sets: the layouts `deepscreen bench` and `deepscreen train` read.

A data set is a folder of real and manipulated clips with ground truth; users have them in the shapes the
public sets ship in, so the layout is detected rather than asking for a conversion.
"""
from __future__ import annotations

import csv
import json
import os
import warnings
from dataclasses import dataclass

from .inputs import is_video_name

_LAYOUTS = (
    "labels CSV (--labels FILE or ROOT/labels.csv with columns file,label[,source,method])",
    "ROOT/real/ + ROOT/fake/ folders",
    "FaceForensics++ (ROOT/original_sequences, ROOT/manipulated_sequences)",
    "DFDC (metadata.json in ROOT or in its part folders)",
    "Celeb-DF (ROOT/List_of_testing_videos.txt)",
)


@dataclass
class LabelledVideo:
    """One benchmark input with its ground truth; source/method let metrics be split by origin."""

    path: str  # absolute
    label: int  # 1 fake, 0 real
    source: str = ""
    method: str = ""


def load_dataset(root: str, labels: str | None = None) -> list[LabelledVideo]:
    """Find the labelled videos under `root`, detecting the layout so users need not convert data sets.

    Layouts tried in order: explicit `labels` CSV, ROOT/labels.csv, FaceForensics++, Celeb-DF,
    DFDC, ROOT/real + ROOT/fake. Videos listed by a metadata file but absent on disk are skipped
    with a warning (partial downloads are common). Raises ValueError naming the layouts when
    nothing matches.
    """
    root = os.path.abspath(root)
    if labels is not None:
        if not os.path.isfile(labels):
            raise ValueError(f"labels file not found: {labels}")
        return _sorted(_load_csv(os.path.abspath(labels)))
    if not os.path.isdir(root):
        raise ValueError(f"data set root is not a folder: {root}")
    csv_path = os.path.join(root, "labels.csv")
    if os.path.isfile(csv_path):
        return _sorted(_load_csv(csv_path))
    if os.path.isdir(os.path.join(root, "original_sequences")) or os.path.isdir(
        os.path.join(root, "manipulated_sequences")
    ):
        return _sorted(_load_ffpp(root))
    if os.path.isfile(os.path.join(root, "List_of_testing_videos.txt")):
        return _sorted(_load_celebdf(root))
    dfdc_meta = _dfdc_metadata_files(root)
    if dfdc_meta:
        return _sorted(_load_dfdc(dfdc_meta))
    real_dir, fake_dir = _child_dir(root, "real"), _child_dir(root, "fake")
    if real_dir and fake_dir:
        return _sorted(_load_real_fake(real_dir, fake_dir))
    raise ValueError(
        f"no known data set layout under {root}; expected one of: " + "; ".join(_LAYOUTS)
    )


def method_groups(spec: str) -> list[list[str]]:
    """`A+B,C` -> [[A, B], [C]]: methods to treat as one (left out of one run together, kept in one fold)."""
    groups = [[m.strip() for m in g.split("+") if m.strip()] for g in spec.split(",")]
    return [g for g in groups if g]


def source_folds(items: list[LabelledVideo], k: int, together: list[list[str]] = ()) -> list[list[LabelledVideo]]:
    """Split labelled clips into `k` folds that share no source and no fake method, balanced in reals and fakes.

    Why: a model scored on clips whose source or generator it trained on is scored on what it remembers.
    Trained on all folds but one and scored on that one, every clip gets a score from a model that never saw
    its camera, its production or its generator: a held-out set several times the size of any kept apart.
    A source's clips stay in one fold, real and fake alike (so a swap demo's real half stays with its fakes,
    and within-source comparisons survive), and so do a method's fakes from every source; methods named in
    one group of `together` (a family of generators) count as one method. The biggest groups are placed
    first, each into the fold that keeps the folds' shares of reals and of fakes most even. Clips without a
    source count as their own.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    family = {m: g[0] for g in together for m in g}
    keys: dict[tuple[str, str], int] = {}

    def node(kind: str, name: str) -> int:
        return keys.setdefault((kind, name), len(keys))

    clips = [node("source", it.source or it.path) for it in items]
    links = [(c, node("method", family.get(it.method, it.method))) for c, it in zip(clips, items)
             if it.label and it.method]
    rows, cols = [c for c, _ in links], [m for _, m in links]
    graph = coo_matrix(([1] * len(links), (rows, cols)), shape=(len(keys), len(keys)))
    _, group_of = connected_components(graph, directed=False)
    groups: dict[int, list[LabelledVideo]] = {}
    for c, it in zip(clips, items):
        groups.setdefault(int(group_of[c]), []).append(it)
    if len(groups) < k:
        raise ValueError(f"{len(groups)} groups of sources and methods cannot fill {k} folds")
    n_fake = max(1, sum(it.label for it in items))
    n_real = max(1, len(items) - n_fake)
    folds: list[list[LabelledVideo]] = [[] for _ in range(k)]
    load = [[0, 0] for _ in range(k)]  # fakes, reals
    for g in sorted(groups.values(), key=lambda g: (-len(g), min(it.path for it in g))):
        fakes = sum(it.label for it in g)
        reals = len(g) - fakes  # the fold whose load, per class, lies least along the group's: the sum of squares
        f = min(range(k), key=lambda i: (load[i][0] * fakes / n_fake ** 2 + load[i][1] * reals / n_real ** 2, i))
        folds[f].extend(g)
        load[f][0] += fakes
        load[f][1] += reals
    return [_sorted(f) for f in folds]


def _sorted(items: list[LabelledVideo]) -> list[LabelledVideo]:
    if not items:
        warnings.warn("data set layout recognised but it lists no videos", stacklevel=3)
    return sorted(items, key=lambda v: v.path)


def _child_dir(root: str, name: str) -> str | None:
    """Case-insensitive child folder lookup (Real/, FAKE/ ... are common)."""
    for entry in sorted(os.listdir(root)):
        full = os.path.join(root, entry)
        if entry.lower() == name and os.path.isdir(full):
            return full
    return None


def _walk_videos(folder: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_video_name(f) and not f.startswith("."))
    return out


def _keep_existing(items: list[LabelledVideo], where: str) -> list[LabelledVideo]:
    present = [v for v in items if os.path.isfile(v.path)]
    missing = len(items) - len(present)
    if missing:
        warnings.warn(f"{where}: {missing} listed video(s) not found on disk, skipped", stacklevel=3)
    return present


def _parse_label(value: str, where: str) -> int:
    v = value.strip().lower()
    if v in ("fake", "1"):
        return 1
    if v in ("real", "0"):
        return 0
    raise ValueError(f"{where}: label must be real/fake or 0/1, got {value!r}")


def _load_csv(path: str) -> list[LabelledVideo]:
    """labels.csv: file,label[,source,method]; file relative to the CSV's folder (or absolute)."""
    base = os.path.dirname(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        file_col = next((cols[c] for c in ("file", "filename", "path", "video") if c in cols), None)
        if file_col is None or "label" not in cols:
            raise ValueError(f"{path}: needs columns 'file' and 'label', found {reader.fieldnames}")
        items = []
        for lineno, row in enumerate(reader, start=2):
            name = (row.get(file_col) or "").strip()
            if not name:
                continue
            items.append(
                LabelledVideo(
                    path=os.path.abspath(os.path.join(base, name)),
                    label=_parse_label(row.get(cols["label"]) or "", f"{path}:{lineno}"),
                    source=(row.get(cols["source"]) or "").strip() if "source" in cols else "",
                    method=(row.get(cols["method"]) or "").strip() if "method" in cols else "",
                )
            )
    return _keep_existing(items, path)


def _load_real_fake(real_dir: str, fake_dir: str) -> list[LabelledVideo]:
    """real/ and fake/ trees; the first sub-folder (if any) names the source."""
    items = []
    for folder, label in ((real_dir, 0), (fake_dir, 1)):
        for p in _walk_videos(folder):
            rel = os.path.relpath(p, folder).split(os.sep)
            items.append(LabelledVideo(path=p, label=label, source=rel[0] if len(rel) > 1 else ""))
    return items


def _ffpp_video_dirs(seq_root: str) -> list[tuple[str, str]]:
    """(group, videos folder) for <seq_root>/<group>/<compression>/videos; mask videos are not inputs."""
    out = []
    if not os.path.isdir(seq_root):
        return out
    for group in sorted(os.listdir(seq_root)):
        gdir = os.path.join(seq_root, group)
        if not os.path.isdir(gdir):
            continue
        for comp in sorted(os.listdir(gdir)):
            vdir = os.path.join(gdir, comp, "videos")
            if comp.lower() != "masks" and os.path.isdir(vdir):
                out.append((group, vdir))
    return out


def _load_ffpp(root: str) -> list[LabelledVideo]:
    """FaceForensics++: originals are real (source youtube/actors), each manipulation is a method.

    Fakes get the source their originals come from (DeepFakeDetection is made from the actors
    recordings, the rest from YouTube) so per-source metrics have both classes. Every compression
    level present (raw, c23, c40) is included.
    """
    items = []
    for src, vdir in _ffpp_video_dirs(os.path.join(root, "original_sequences")):
        items += [LabelledVideo(path=p, label=0, source=src) for p in _walk_videos(vdir)]
    for method, vdir in _ffpp_video_dirs(os.path.join(root, "manipulated_sequences")):
        src = "actors" if method.lower() in ("deepfakedetection", "dfd") else "youtube"
        items += [LabelledVideo(path=p, label=1, source=src, method=method) for p in _walk_videos(vdir)]
    return items


def _load_celebdf(root: str) -> list[LabelledVideo]:
    """Celeb-DF test list: "1 YouTube-real/00170.mp4" where 1 means REAL and 0 means fake."""
    list_path = os.path.join(root, "List_of_testing_videos.txt")
    items = []
    with open(list_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2 or parts[0] not in ("0", "1"):
                raise ValueError(f"{list_path}:{lineno}: expected '<0|1> <path>', got {line.strip()!r}")
            rel = parts[1].strip().replace("\\", "/")
            items.append(
                LabelledVideo(
                    path=os.path.abspath(os.path.join(root, *rel.split("/"))),
                    label=1 - int(parts[0]),
                    source=rel.split("/")[0] if "/" in rel else "",
                )
            )
    return _keep_existing(items, list_path)


def _dfdc_metadata_files(root: str) -> list[str]:
    """metadata.json in ROOT and/or in its immediate part folders (dfdc_train_part_0/, ...)."""
    found = []
    top = os.path.join(root, "metadata.json")
    if os.path.isfile(top):
        found.append(top)
    for entry in sorted(os.listdir(root)):
        cand = os.path.join(root, entry, "metadata.json")
        if os.path.isfile(cand):
            found.append(cand)
    return found


def _load_dfdc(meta_files: list[str]) -> list[LabelledVideo]:
    """DFDC: metadata.json maps file name -> {"label": "FAKE"/"REAL", "original": ...}."""
    items = []
    for meta in meta_files:
        with open(meta, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict):
            raise ValueError(f"{meta}: expected a JSON object mapping file name -> info")
        base = os.path.dirname(meta)
        for name, info in sorted(data.items()):
            raw = info.get("label") if isinstance(info, dict) else info
            items.append(
                LabelledVideo(
                    path=os.path.abspath(os.path.join(base, name)),
                    label=_parse_label(str(raw), f"{meta}[{name!r}]"),
                    source="dfdc",
                )
            )
    return _keep_existing(items, "DFDC metadata")
