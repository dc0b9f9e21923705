"""Average the weights of detectors fine-tuned from one start (a "model soup"): one network, the cost of one.

    .venv/bin/python scripts/average_weights.py A.pt B.pt [...] --out SOUP.pt
    .venv/bin/python scripts/average_weights.py TUNED.pt START.pt --mix 0.75 0.25 --out MIX.pt

Why: runs of one recipe that differ only in their seed land in different places of one basin; their average
often ranks unseen data better than either (Wortsman et al., 2022, "Model soups"), and scoring it costs what
scoring one does. The inputs must share architecture, input size and crop; the average keeps the first one's
profile, drops its threshold (calibrate the soup: `deepscreen calibrate`) and names its parts in
`extra.averaged`. Averaging networks trained from different starts gives nonsense: the script cannot tell, so
give it runs of one `--init`. `--mix` weighs the parts unequally; a fine-tuned network mixed with the one it
started from is WiSE-FT (Wortsman et al., 2022, "Robust fine-tuning of zero-shot models"), which can keep some of
what the start knew that fine-tuning lost (tried for version 3's face-swap ranking: the model card says how little).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deepscreen.model import Detector, ModelProfile, save_checkpoint  # noqa: E402


def average(paths: list[str], mix: list[float] | None = None) -> tuple[torch.nn.Module, ModelProfile]:
    """The parameter-wise mean of the checkpoints, weighted by `mix` (normalised to sum to 1) when given."""
    if mix is None:
        mix = [1.0] * len(paths)
    if len(mix) != len(paths) or min(mix) < 0 or sum(mix) <= 0:
        raise SystemExit("--mix needs one non-negative weight per checkpoint, not all zero")
    mix = [m / sum(mix) for m in mix]
    detectors = [Detector.load(p, device="cpu", runtime="torch") for p in paths]
    first = detectors[0].profile
    for p, d in zip(paths[1:], detectors[1:]):
        same = (d.profile.arch, d.profile.input_size, d.profile.margin, d.profile.mean, d.profile.std)
        if same != (first.arch, first.input_size, first.margin, first.mean, first.std):
            raise SystemExit(f"{p} differs from {paths[0]} in architecture, input size or crop: cannot average")
    states = [d.model.state_dict() for d in detectors]
    soup = {k: sum(m * s[k] for m, s in zip(mix, states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[0].items()}
    model = detectors[0].model
    model.load_state_dict(soup)
    extra = dict(first.extra) | {"averaged": [Path(p).name for p in paths]}
    if len(set(mix)) > 1:
        extra["mix"] = [round(m, 6) for m in mix]
    profile = ModelProfile(name=first.name, arch=first.arch, input_size=first.input_size, margin=first.margin,
                           mean=first.mean, std=first.std, extra=extra)
    return model, profile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="two or more deepscreen checkpoints of one architecture")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mix", type=float, nargs="+", default=None, metavar="W",
                    help="one weight per checkpoint, in their order (normalised to sum to 1); default: equal")
    args = ap.parse_args(argv)
    if len(args.weights) < 2:
        ap.error("give two or more checkpoints")
    model, profile = average(args.weights, args.mix)
    save_checkpoint(args.out, model, profile)
    kind = "weighted mean" if "mix" in profile.extra else "mean"
    print(f"wrote {args.out}: the {kind} of {len(args.weights)} checkpoints; calibrate it before use")
    return 0


if __name__ == "__main__":
    sys.exit(main())
