"""Find faces: facenet-pytorch's MTCNN, batched across frames; crops from full resolution; tracks by overlap.

Detection runs on a copy scaled so that the smallest face we keep is still above MTCNN's own minimum: the
cost of MTCNN grows with pixels and with the depth of its scale pyramid, so detecting a 1080p frame at full
size buys nothing when faces under `min_face` pixels are dropped anyway.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

MTCNN_MIN = 20  # smallest face MTCNN looks for on the detection copy, in its pixels
TRACK_S = 1.0  # a frame this far (seconds) from the last whole-frame search gets one of its own
ROI_CONTEXT = 2.0  # side of the window searched around a known face, in face sides
ROI_SIDE = 96  # that window's side in MTCNN's pixels: the face is ~48 px in it...
ROI_MIN = 32  # ...so the window's pyramid skips the scales that look for tiny faces
ROI_BATCH = 64  # windows per MTCNN call


@dataclass
class Face:
    """One detected face in one sampled frame; coordinates in the frame's pixels."""

    frame_index: int
    t: float
    box: np.ndarray  # x1, y1, x2, y2
    prob: float
    landmarks: np.ndarray  # 5x2: left eye, right eye, nose, mouth left, mouth right
    track_id: int = -1
    crop: np.ndarray | None = field(default=None, repr=False)
    detail: float | None = None  # the crop's fine detail (`detail`), measured once when it is cut

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


class FaceFinder:
    """Wraps MTCNN. Loaded once per process; `find` takes frames of one size (one video) at a time.

    With `detect_every` > 1, whole frames are searched only on every n-th frame; the frames between are
    searched only around the faces that search found (see `find`). Full-frame detection is most of the
    pipeline's CPU time, and a face moves little in the fraction of a second between sampled frames.
    """

    def __init__(self, device: str | torch.device = "cpu", min_face: int = 40, detect_side: int = 1024,
                 prob_threshold: float = 0.95, batch_size: int | None = None, detect_every: int = 1):
        from facenet_pytorch import MTCNN  # imported here: it pulls in torchvision, slow to import

        self.device = torch.device(device)
        self.min_face = min_face
        self.detect_side = detect_side
        self.prob_threshold = prob_threshold
        self.detect_every = max(1, detect_every)
        # Measured on 2 CPU cores (16 1080p frames): batches of 4 cost 20-30% less CPU and 240 MB less memory
        # than batches of 16; on a GPU, bigger batches are what keep it busy.
        self.batch_size = batch_size or (16 if self.device.type == "cuda" else 4)
        self.mtcnn = MTCNN(keep_all=True, select_largest=False, post_process=False, device=self.device,
                           min_face_size=MTCNN_MIN)
        # For windows around a known face: fewer, stricter first-stage candidates. Measured on 96 windows
        # (sample and dev clips, CPU shared with a training run): 35 ms a window instead of 57 for 128-px
        # windows with default settings, every face still found, boxes at IoU 0.91 with whole-frame detection.
        self.window_mtcnn = MTCNN(keep_all=True, post_process=False, device=self.device, min_face_size=ROI_MIN,
                                  thresholds=[0.8, 0.7, 0.7])

    @torch.inference_mode()
    def warm_up(self) -> None:
        """On a GPU, run MTCNN's three networks once on blank input: CUDA loads kernels on first use."""
        if self.device.type != "cuda":
            return
        for mtcnn in (self.mtcnn, self.window_mtcnn):
            mtcnn.detect(np.zeros((2, 160, 160, 3), np.uint8))  # the first stage; a blank frame goes no further
            mtcnn.rnet(torch.zeros(16, 3, 24, 24, device=self.device))
            mtcnn.onet(torch.zeros(16, 3, 48, 48, device=self.device))
        torch.cuda.synchronize(self.device)

    @property
    def chunk(self) -> int:
        """Frames to hand `find` at once: enough for one full batch of whole-frame detections."""
        return self.batch_size * self.detect_every

    def detection_scale(self, width: int, height: int) -> float:
        """Downscale for detection so a `min_face` face lands on MTCNN's own minimum; capped by detect_side.

        The pyramid MTCNN builds is the same either way, but the smaller copy makes every stage cheaper.
        """
        return min(1.0, MTCNN_MIN / self.min_face, self.detect_side / max(width, height))

    def find(self, images: list[np.ndarray], times: list[float], indices: list[int] | None = None,
             known: dict[int, list[Face]] | None = None) -> list[list[Face]]:
        """Detect faces in same-sized RGB frames of one video, in time order; returns one list per frame.

        The first frame, every `detect_every`-th after it, and any frame more than `TRACK_S` after the last
        such frame are searched whole. Each other frame is searched only in a small window around each face
        of the last whole-frame search (`_refind`): a person who appears between two whole-frame searches is
        found at the next one. `known` holds whole-frame searches already made (`search`), by frame index: those
        frames count as searched and are not searched again. `indices`: the frames' indices among the sampled
        frames (default 0, 1, ...), which `known` and the faces' `frame_index` use.
        """
        if not images:
            return []
        known = known or {}
        indices = list(range(len(images))) if indices is None else indices
        key_of: list[int] = []  # for each frame, the whole-frame search it relies on
        for i, t in enumerate(times):
            k = key_of[-1] if key_of else 0
            new_key = (not key_of or indices[i] - indices[k] >= self.detect_every or t - times[k] > TRACK_S
                       or indices[i] in known)
            key_of.append(i if new_key else k)
        keys = sorted(set(key_of))
        out: list[list[Face]] = [known.get(index, []) for index in indices]
        todo = [i for i in keys if indices[i] not in known]
        for i, faces in zip(todo, self._detect([images[i] for i in todo])):
            out[i] = faces
        around = [(i, face.box) for i, k in enumerate(key_of) if k != i for face in out[k]]
        found = self._refind([images[i] for i, _ in around], [box for _, box in around])
        for (i, _), face in zip(around, found):
            if face is not None and all(iou(face.box, other.box) < 0.5 for other in out[i]):
                out[i].append(face)
        for i, faces in enumerate(out):
            for face in faces:
                face.frame_index, face.t = indices[i], times[i]
        return out

    def search(self, images: list[np.ndarray], times: list[float], indices: list[int]) -> list[list[Face]]:
        """Whole-frame search of same-sized frames that need not be neighbours (an early pass)."""
        out = self._detect(images)
        for faces, t, index in zip(out, times, indices):
            for face in faces:
                face.frame_index, face.t = index, t
        return out

    def _keep(self, box: np.ndarray, prob: float, landmarks: np.ndarray) -> Face | None:
        face = Face(frame_index=-1, t=0.0, box=box.astype(np.float32), prob=float(prob),
                    landmarks=landmarks.astype(np.float32))
        return face if face.prob >= self.prob_threshold and face.size >= self.min_face else None

    def _detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Whole-frame MTCNN on a copy scaled by `detection_scale`, in batches."""
        if not images:
            return []
        h, w = images[0].shape[:2]
        if min(h, w) < self.min_face:  # no face we would keep fits (and MTCNN fails below its 12 px cell)
            return [[] for _ in images]
        scale = self.detection_scale(w, h)
        out: list[list[Face]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            if scale < 1.0:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                chunk = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in chunk]
            boxes, probs, points = _detect_lifting_shadows(self.mtcnn, chunk, self.prob_threshold)
            for j in range(len(chunk)):
                found = zip(boxes[j], probs[j], points[j]) if boxes[j] is not None else ()
                out.append([f for b, p, lm in found if (f := self._keep(b / scale, p, lm / scale))])
        return out

    def _refind(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[Face | None]:
        """Look for the face near `boxes[i]` in `images[i]` only: MTCNN on a small window, all windows batched.

        The window is the box enlarged to ROI_CONTEXT times its side, scaled to ROI_SIDE pixels, so the face
        is about half the window whatever its size in the frame: MTCNN's pyramid on it is a few small levels.
        """
        if not images:
            return []
        h, w = images[0].shape[:2]
        windows, placed = [], []
        for image, box in zip(images, boxes):
            x0, y0, side = crop_box(box, ROI_CONTEXT - 1.0, w, h)
            zoom = ROI_SIDE / side
            interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
            windows.append(cv2.resize(image[y0:y0 + side, x0:x0 + side], (ROI_SIDE, ROI_SIDE), interpolation=interp))
            placed.append((x0, y0, zoom))
        out: list[Face | None] = []
        for start in range(0, len(windows), ROI_BATCH):
            found_boxes, probs, points = _detect_lifting_shadows(self.window_mtcnn, windows[start:start + ROI_BATCH],
                                                                self.prob_threshold)
            for j, (b, p, lm) in enumerate(zip(found_boxes, probs, points)):
                x0, y0, zoom = placed[start + j]
                offset = np.array([x0, y0], np.float32)
                best, best_overlap = None, 0.2  # the face that overlaps the known one most, if any overlaps enough
                for bb, pp, ll in zip(b, p, lm) if b is not None else ():
                    face = self._keep(bb / zoom + np.tile(offset, 2), pp, ll / zoom + offset)
                    overlap = iou(face.box, boxes[start + j]) if face else 0.0
                    if overlap > best_overlap:
                        best, best_overlap = face, overlap
                out.append(best)
        return out


def _detect_lifting_shadows(mtcnn, images: list[np.ndarray], keep: float) -> tuple[list, list, list]:
    """MTCNN on same-sized images; a dark image where it finds no face of probability `keep` is tried again
    brightened.

    MTCNN misses faces in dim footage: on a dark 1080p DFDC clip it found a face in 2 of 16 frames, 16 of 16
    brightened. Brightening every dark frame is no cure-all (on a dark, flat, noisy rendering of a test photo it
    lost the face MTCNN found unaided), so it is a second try only. The detector still scores the untouched pixels.
    """
    with torch.inference_mode():
        boxes, probs, points = (list(x) for x in mtcnn.detect(np.stack(images), landmarks=True))
    lifted = {j: lift_shadows(images[j]) for j, b in enumerate(boxes) if b is None or max(probs[j]) < keep}
    retry = [j for j, image in lifted.items() if image is not images[j]]
    if retry:
        with torch.inference_mode():
            again = mtcnn.detect(np.stack([lifted[j] for j in retry]), landmarks=True)
        for k, j in enumerate(retry):
            boxes[j], probs[j], points[j] = again[0][k], again[1][k], again[2][k]
    return boxes, probs, points


def lift_shadows(image: np.ndarray, dark: float = 0.35, target: float = 0.45) -> np.ndarray:
    """Brighten a dark image (mean luminance under `dark`) with a gamma curve; others come back as they are."""
    mean = float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean()) / 255.0
    if mean >= dark or mean < 0.02:  # not dark, or black (a fade-out: nothing to lift but noise)
        return image
    lut = (255.0 * (np.arange(256) / 255.0) ** (np.log(target) / np.log(mean))).round().astype(np.uint8)
    return cv2.LUT(image, lut)


def crop_box(box: np.ndarray, margin: float, width: int, height: int) -> tuple[int, int, int]:
    """Square crop around a face box, enlarged by `margin`, moved (never padded) to lie inside the image.

    Training crops and inference crops come from this one function, so the detector never sees a border
    at inference that it did not see in training, and never learns padding as a cue.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * (1.0 + margin)
    side = int(round(min(side, width, height)))
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, max(side, 1)


def crop_face(image: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """Cut the square face crop and resize it to the detector's input size."""
    h, w = image.shape[:2]
    x0, y0, side = crop_box(box, margin, w, h)
    crop = image[y0:y0 + side, x0:x0 + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def detail(crop: np.ndarray) -> float:
    """Fine detail of an RGB crop: the variance of its Laplacian (grey levels). Sharp and soft sources differ by it
    more than real and fake faces do, so it is the baseline a detector's ranking is read against (bench)."""
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def link_tracks(frames: list[list[Face]], min_iou: float = 0.3) -> int:
    """Give each face a track id: greedy best-overlap matching to each track's latest box, frame by frame.

    A track may skip frames (a missed detection does not split a person in two). Returns the track count.
    """
    last_box: list[np.ndarray] = []
    for faces in frames:
        pairs = sorted(((iou(f.box, last_box[t]), k, t) for k, f in enumerate(faces)
                        for t in range(len(last_box))), reverse=True)
        used_faces, used_tracks = set(), set()
        for overlap, k, t in pairs:
            if overlap < min_iou:
                break
            if k in used_faces or t in used_tracks:
                continue
            faces[k].track_id = t
            last_box[t] = faces[k].box
            used_faces.add(k)
            used_tracks.add(t)
        for k, f in enumerate(faces):
            if k not in used_faces:
                f.track_id = len(last_box)
                last_box.append(f.box)
    return len(last_box)
