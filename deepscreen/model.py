"""The manipulation detector: model profiles, checkpoints and batched scoring.

A checkpoint is a plain dict: `{"format": "deepscreen-detector", "profile": {...}, "state_dict": {...}}`. The
profile says everything inference must match from training: architecture, input size, normalisation, crop
margin, a version and a default threshold. Checkpoints load with `weights_only=True` (a pickle that would run
code is refused) and `strict=True` (a profile that does not match its tensors is refused).

On a CPU the loaded network runs in ONNX Runtime (`runtime="auto"`): the same weights, exported once per
checkpoint into a cache folder, score the same (within 1e-6 here) at a fraction of PyTorch's cost on 2 cores
(see the README's performance section). On a GPU it stays in PyTorch, with fp16 autocast.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

log = logging.getLogger("deepscreen.model")
FORMAT = "deepscreen-detector"
RUNTIMES = ("auto", "torch", "onnx")
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = "deepscreen-sbi-mnv2.pt"


class ModelError(Exception):
    """A checkpoint that cannot be used, with a message a user can act on."""


@dataclass
class ModelProfile:
    name: str
    arch: str
    input_size: int
    margin: float  # face box enlarged by this fraction before the square crop (see faces.crop_box)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    threshold: float = 0.5
    version: str = "1"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


def _mobilenet_v2() -> nn.Module:
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2()
    net.classifier[-1] = nn.Linear(net.last_channel, 1)
    return net


def _tiny_cnn() -> nn.Module:
    """A few-layer CNN: fast enough for tests and smoke runs, never a real detector."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1))


# MobileNetV2 blocks whose globally pooled outputs a tap head reads: textures (3, 6), parts (13), the whole (18).
TAPS = (3, 6, 13, 18)
TAP_FEATURES = 24 + 32 + 96 + 1280


class TapNet(nn.Module):
    """MobileNetV2's feature layers with one linear head over pooled features of four depths.

    Why: a head fitted on a frozen backbone (`deepscreen.heads`) can then weigh texture-level evidence from the
    early blocks as well as the last layer's.
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.features = mobilenet_v2().features
        self.head = nn.Linear(TAP_FEATURES, 1)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                taps.append(x.mean((2, 3)))
        return torch.cat(taps, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))


class Committee(nn.Module):
    """Tap networks whose logits add up; each head already holds its member's share and standardisation."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(TapNet() for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).sum(0)


# What the two logits of a kind network stand for: a face blended into a filmed frame (face swaps, reenactment,
# self-blends) and a face generated whole (talking-head and portrait-animation generators).
KINDS = ("blended", "generated")


class KindNet(nn.Module):
    """MobileNetV2 with one logit per kind of manipulation; its score is the larger of the scored kinds' logits.

    Why: one logit has to put blend boundaries and generated texture on the same side of one direction, and
    self-blends pulled against generated heads when their share grew (weights/README.md). The state dict has
    MobileNetV2's own names, so a one-logit checkpoint can start it (`widen_head`). `scored` names the kinds
    whose larger logit is the score (all by default; the profile's `extra["kinds"]["scored"]` when chosen).
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        net = mobilenet_v2()
        self.features = net.features
        self.classifier = net.classifier
        self.classifier[-1] = nn.Linear(net.last_channel, len(KINDS))
        self.scored = list(range(len(KINDS)))

    def kinds(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kinds(x)[:, self.scored].amax(1, keepdim=True)


class PatchNet(nn.Module):
    """MobileNetV2's first eight blocks (each output sees 75 of the 224 pixels) and a small head on every position:
    one logit per face patch; the score is their mean over the central patches, which lie on the face.

    Why: a whole-image network can read what a source looks like overall (framing, identity, lighting); a patch
    seen alone has only local texture and blending to go on, which is what differs between any generator and a
    camera. Classifiers with a truncated receptive field trained on every patch generalised better to unseen
    generators in Chai et al. (ECCV 2020). Training asks every central patch for the clip's label (`patches`).
    On this project's clips it learnt no blend boundaries and read sharpness instead (weights/README.md).
    """

    cut, width = 8, 64

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.features = mobilenet_v2().features[:self.cut]
        self.classifier = nn.Sequential(nn.Conv2d(self.width, 128, 1), nn.ReLU6(inplace=True), nn.Dropout(0.2),
                                        nn.Conv2d(128, 1, 1))

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the central patches (batch x patches) and the pooled features (what the source adversary reads)."""
        f = self.features(x)
        edge = (f.shape[-1] * 23 + 100) // 200  # round(0.115 w): the face fills the middle 1/1.3 at the default margin
        logits = self.classifier(f[..., edge:f.shape[-2] - edge, edge:f.shape[-1] - edge])
        return logits.flatten(1), f.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patches(x)[0].mean(1, keepdim=True)


def truncate_state(state: dict[str, torch.Tensor], blocks: int) -> dict[str, torch.Tensor]:
    """A MobileNetV2 state's first `blocks` feature blocks: where a patch network starts from a whole one."""
    return {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < blocks}


def widen_head(state: dict[str, torch.Tensor], outputs: int) -> dict[str, torch.Tensor]:
    """A one-logit MobileNetV2 state with its last layer repeated `outputs` times (every kind starts alike)."""
    state = dict(state)
    for k in ("classifier.1.weight", "classifier.1.bias"):
        state[k] = state[k].repeat(outputs, *[1] * (state[k].dim() - 1))
    return state


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "mobilenet_v2": _mobilenet_v2,
    "mobilenet_v2_kinds": KindNet,
    "mobilenet_v2_patches": PatchNet,
    "tiny_cnn": _tiny_cnn,
    "mobilenet_v2_taps": lambda: Committee(1),
    "mobilenet_v2_taps_x2": lambda: Committee(2),
}


def create_model(arch: str) -> nn.Module:
    """Build an architecture with one output logit (fake), weights uninitialised by any download."""
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch]()


def save_checkpoint(path: str | os.PathLike, model: nn.Module, profile: ModelProfile) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _save_atomic({"format": FORMAT, "profile": profile.to_dict(), "state_dict": state}, path)


def _save_atomic(ckpt: dict, path: str | os.PathLike) -> None:
    tmp = f"{path}.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def update_profile(path: str | os.PathLike, threshold: float | None = None, version: str | None = None,
                   **extra) -> None:
    """Rewrite a checkpoint's profile in place (same weights): a new default threshold or version, extra facts."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{Path(path).name} is not a deepscreen detector checkpoint")
    if threshold is not None:
        ckpt["profile"]["threshold"] = float(threshold)
    if version is not None:
        ckpt["profile"]["version"] = version
    ckpt["profile"].setdefault("extra", {}).update(extra)
    _save_atomic(ckpt, path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def default_weights() -> Path:
    """$DEEPSCREEN_WEIGHTS, else the default detector shipped in the repository's weights/ folder."""
    return Path(os.environ.get("DEEPSCREEN_WEIGHTS") or WEIGHTS_DIR / DEFAULT_WEIGHTS)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(device)


def cache_dir() -> Path:
    """$DEEPSCREEN_CACHE, else ~/.cache/deepscreen: derived files (ONNX exports), safe to delete."""
    return Path(os.environ.get("DEEPSCREEN_CACHE") or Path.home() / ".cache" / "deepscreen")


def onnx_session(model: nn.Module, input_size: int, key: str):
    """An ONNX Runtime session for `model`, exported once into the cache under `key` (the weights' hash).

    Returns None, with a warning, when onnxruntime or the export is unavailable: the caller stays on PyTorch.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        log.warning("onnxruntime is not installed: the detector runs in PyTorch (slower on a CPU)")
        return None
    path = cache_dir() / "onnx" / f"{key}-{input_size}.onnx"
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            os.close(fd)
            try:
                with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation on each call
                    warnings.simplefilter("ignore")
                    torch.onnx.export(model.cpu().eval(), (torch.zeros(1, 3, input_size, input_size),), tmp,
                                      input_names=["x"], output_names=["logit"], dynamo=False,
                                      dynamic_axes={"x": {0: "n"}, "logit": {0: "n"}})
                os.replace(tmp, path)  # atomic: a concurrent loader sees the whole file or none
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the cores are the decoder's too
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - an exporter or runtime gap must not stop a scan
        log.warning("ONNX export of the detector failed (%s: %s): it runs in PyTorch", type(e).__name__, e)
        return None


def _state_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Detector:
    """A loaded checkpoint: `score(crops)` gives the probability that each face crop is manipulated."""

    def __init__(self, model: nn.Module, profile: ModelProfile, device: torch.device, sha256: str = "",
                 batch_size: int = 32, runtime: str = "auto"):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        if runtime == "onnx" and device.type != "cpu":
            raise ModelError("the ONNX runtime is the CPU path; on a GPU the detector runs in PyTorch")
        self.profile = profile
        self.device = device
        self.sha256 = sha256
        self.batch_size = batch_size
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        self._mean = torch.tensor(profile.mean, device=device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(profile.std, device=device).view(1, 3, 1, 1) * 255
        self._session = None
        if device.type == "cpu" and runtime != "torch":
            self._session = onnx_session(model, profile.input_size, (sha256 or _state_hash(model))[:16])
            if self._session is None and runtime == "onnx":
                raise ModelError("--runtime onnx asked for, but the ONNX runtime could not be set up (see the log)")
        self.runtime = "onnx" if self._session is not None else "torch"

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", batch_size: int = 32,
             runtime: str = "auto") -> "Detector":
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"weights not found: {path}")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"refused to load {path.name}: not a plain-tensor checkpoint ({first})") from e
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
            raise ModelError(f"{path.name} is not a deepscreen detector checkpoint")
        p = dict(ckpt["profile"])
        p["mean"], p["std"] = tuple(p["mean"]), tuple(p["std"])
        profile = ModelProfile(**p)
        model = create_model(profile.arch)
        try:
            model.load_state_dict(ckpt["state_dict"], strict=True)
        except RuntimeError as e:
            raise ModelError(f"{path.name}: weights do not match architecture {profile.arch!r}: {e}") from e
        if isinstance(model, KindNet) and "scored" in profile.extra.get("kinds", {}):
            model.scored = [KINDS.index(k) for k in profile.extra["kinds"]["scored"]]
        return cls(model, profile, resolve_device(device), sha256_file(path), batch_size, runtime)

    def warm_up(self) -> None:
        """On a GPU, score one blank batch now: CUDA loads its kernels on first use (1.8 s measured on an H200),
        which would otherwise land in the first video's scoring time."""
        if self.device.type == "cuda":
            side = self.profile.input_size
            self.score([np.zeros((side, side, 3), np.uint8)] * self.batch_size)
            torch.cuda.synchronize(self.device)

    def scoring_key(self) -> str:
        """A hash of what turns a crop into a score (weights, crop, scored logits), not of the threshold: a
        checkpoint keeps its key when `calibrate` writes a threshold into the file."""
        p = self.profile
        what = [_state_hash(self.model), p.arch, p.input_size, p.margin, list(p.mean), list(p.std),
                getattr(self.model, "scored", None)]
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()

    def info(self) -> dict:
        info = {"name": self.profile.name, "arch": self.profile.arch, "version": self.profile.version,
                "input_size": self.profile.input_size, "weights_sha256": self.sha256, "runtime": self.runtime}
        if self.profile.extra.get("warning"):
            info["warning"] = self.profile.extra["warning"]
        return info

    def to_tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        """uint8 HxWx3 crops -> a normalised NCHW float batch on the detector's device."""
        batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        batch = (batch.float() - self._mean) / self._std
        return batch.contiguous(memory_format=torch.channels_last)

    def score(self, crops: list[np.ndarray]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                x = self.to_tensor(crops[start:start + self.batch_size])
                if self._session is not None:
                    logits = self._session.run(None, {"x": x.contiguous().numpy()})[0]
                    out.append(torch.sigmoid(torch.from_numpy(logits)).flatten().numpy())
                    continue
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
                    logits = self.model(x)
                out.append(torch.sigmoid(logits.float()).flatten().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)
