"""Train the latent autoencoder whose reconstructions `deepscreen train --recon-share` uses as pseudo-fakes.

    .venv/bin/python scripts/train_autoencoder.py cache/faces/videos --out runs/ae4.pt      # ~10 min on 2 cores

Input: folders of real face images (the training face cache holds them). It reports, on images it did not train
on, how close the reconstructions are (PSNR) and how much fine detail they keep (Laplacian variance, as a ratio
to the originals'): a detector trained on reconstructions that are much softer than the faces would learn
"soft means fake" instead of the decoder's fingerprint.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from deepscreen import autoencoder
from deepscreen.faces import detail
from deepscreen.training import IMAGE_EXTENSIONS, native_bf16


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--latent", type=int, default=12)
    ap.add_argument("--stages", type=int, default=2, help="downsampling stages: the latent is 2^stages smaller")
    ap.add_argument("--spectrum", type=float, default=0.1, help="weight of the loss on log amplitude spectra")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", type=int, default=64, help="images kept out of training for the report")
    ap.add_argument("--report", action="store_true", help="only report on the autoencoder already at --out")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    paths = sorted(p for f in args.folders for p in Path(f).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(paths) <= args.held_out:
        raise SystemExit(f"need more than {args.held_out} images, found {len(paths)}")
    order = np.random.default_rng(args.seed).permutation(len(paths))
    test = [read_rgb(paths[i]) for i in order[:args.held_out]]
    report = {"images": len(paths) - len(test), "held_out": len(test)}
    if args.report:
        ae = autoencoder.load(args.out)
    else:
        train = [read_rgb(paths[i]) for i in order[args.held_out:]]
        ae = autoencoder.LatentAutoencoder(args.width, args.latent, args.stages)
        t0 = time.monotonic()
        losses = autoencoder.fit(ae, train, args.steps, args.batch, args.size, spectrum=args.spectrum,
                                 seed=args.seed, bf16=native_bf16())
        autoencoder.save(ae, args.out)
        report.update(steps=args.steps, minutes=round((time.monotonic() - t0) / 60, 1), bf16=native_bf16(),
                      torch_threads=torch.get_num_threads(), last_loss=round(float(np.mean(losses[-50:])), 4))
    psnr, ratio = [], []
    for img in test:
        rec = autoencoder.reconstruct(ae, img)
        mse = float(np.mean((rec.astype(np.float32) - img.astype(np.float32)) ** 2))
        psnr.append(10 * np.log10(255.0 ** 2 / max(mse, 1e-6)))
        ratio.append(detail(rec) / max(detail(img), 1e-6))
    report.update(psnr_db=round(float(np.median(psnr)), 2), detail_ratio=round(float(np.median(ratio)), 3))
    print(json.dumps(report))
    if not args.report:
        Path(args.out).with_suffix(".json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
