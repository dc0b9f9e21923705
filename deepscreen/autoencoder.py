"""A small latent autoencoder whose reconstructions of real faces are pseudo-fakes of a generated face.

Why: most recent talking-head generators (Hallo, EchoMimic, Loopy, Sonic, FantasyTalking, MegActor) draw every
frame through the decoder of a latent autoencoder: a latent 8 times smaller than the frame, upsampled back to
pixels. Whatever the generator does in the latent, the decoder leaves its fingerprint on the pixels. A real face
and that face passed through such an autoencoder differ only by the fingerprint, so a detector trained on the
pair cannot win with identity, pose or source looks (the idea of AutoGAN, Zhang et al. 2019, and of "aligned"
real/reconstruction pairs, Rajan et al. 2025). Self-blends teach blend boundaries; these teach a decoded face.
The public decoders cannot be downloaded here, so the project trains its own of the same shape.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

log = logging.getLogger("deepscreen.autoencoder")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.SiLU())


class LatentAutoencoder(nn.Module):
    """`stages` stride-2 stages down to a `latent`-channel map, as many nearest-neighbour upsampling stages back
    (latent diffusion decoders upsample this way). Images in [-1, 1]; sides divisible by `factor`. The generators'
    decoders use 3 stages (1/8); trained here on a CPU for minutes, 3 stages smeared faces and 2 (1/4) kept them
    (weights/README.md), hence the default."""

    def __init__(self, width: int = 32, latent: int = 12, stages: int = 2):
        super().__init__()
        self.width, self.latent, self.stages = width, latent, stages
        self.factor = 2 ** stages
        w = [width * min(2 ** i, 4) for i in range(stages + 1)]
        down = [nn.Sequential(nn.Conv2d(w[i], w[i + 1], 3, stride=2, padding=1), _block(w[i + 1], w[i + 1]))
                for i in range(stages)]
        self.encoder = nn.Sequential(nn.Conv2d(3, w[0], 3, padding=1), nn.SiLU(), *down, nn.Conv2d(w[-1], latent, 1))
        up = [nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _block(w[i + 1], w[i]))
              for i in reversed(range(stages))]
        self.decoder = nn.Sequential(nn.Conv2d(latent, w[-1], 3, padding=1), nn.SiLU(), *up,
                                     nn.Conv2d(w[0], 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def reconstruct(ae: LatentAutoencoder, image: np.ndarray) -> np.ndarray:
    """The RGB uint8 `image` passed through the autoencoder, same size (edges reflected up to a multiple of its
    factor), each colour channel's mean and spread matched to the input's: a small decoder shifts colours a little
    (whites turn grey), and a colour cast is not what a generator's decoder leaves."""
    h, w = image.shape[:2]
    ph, pw = -h % ae.factor, -w % ae.factor
    padded = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else image
    out = ae(_to_tensor([padded]))[0, :, :h, :w].float().add(1.0).mul(127.5).permute(1, 2, 0).numpy()
    src = image.astype(np.float32)
    mu, sd = out.mean((0, 1)), out.std((0, 1)) + 1e-3
    out = (out - mu) / sd * src.std((0, 1)) + src.mean((0, 1))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def spectrum_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between log amplitude spectra: an L1 loss alone gives a blurred face, which would teach the detector
    that soft means fake; this asks the decoder for the real face's fine detail too."""
    fa, fb = torch.fft.rfft2(a.float()).abs(), torch.fft.rfft2(b.float()).abs()
    return (torch.log1p(fa) - torch.log1p(fb)).abs().mean()


def random_crops(images: list[np.ndarray], rng: np.random.Generator, n: int, size: int) -> list[np.ndarray]:
    """`n` square crops of `size` pixels at random scales (half to all of the shorter side: faces at about the
    scale they are reconstructed at) and places."""
    out = []
    for i in rng.integers(len(images), size=n):
        img = images[i]
        h, w = img.shape[:2]
        side = int(rng.uniform(min(h, w) / 2, min(h, w)))
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
        out.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return [np.ascontiguousarray(c) for c in out]


def fit(ae: LatentAutoencoder, images: list[np.ndarray], steps: int, batch: int = 16, size: int = 128,
        lr: float = 1e-3, spectrum: float = 0.1, seed: int = 0, bf16: bool = False,
        log_every: int = 50) -> list[float]:
    """Train the autoencoder to reconstruct random crops of `images` (RGB uint8 real faces); the losses by step.
    `bf16`: autocast on the CPU (only where it runs natively: `training.native_bf16`)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(ae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    ae.train()
    losses = []
    for step in range(1, steps + 1):
        x = _to_tensor(random_crops(images, rng, batch, size))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = ae(x)
        loss = (y - x).abs().mean() + spectrum * spectrum_loss(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % log_every == 0:
            log.info("autoencoder step %d/%d: loss %.4f", step, steps, float(np.mean(losses[-log_every:])))
    ae.eval()
    return losses


def save(ae: LatentAutoencoder, path: str | Path) -> None:
    torch.save({"width": ae.width, "latent": ae.latent, "stages": ae.stages, "state": ae.state_dict()}, path)


def load(path: str | Path) -> LatentAutoencoder:
    state = torch.load(path, map_location="cpu", weights_only=True)
    ae = LatentAutoencoder(state["width"], state["latent"], state["stages"])
    ae.load_state_dict(state["state"])
    return ae.eval()
