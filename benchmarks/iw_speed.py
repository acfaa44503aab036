"""Speed of the importance-weighted likelihood estimate: seconds per model and K.

Times `aebench.evaluation.likelihood.estimate_likelihood` (the code the
evaluate stage runs) over the test images, for each checkpoint and each K:

    python benchmarks/iw_speed.py --data data/prepared/mnist.npz --samples 200 1000
    python benchmarks/iw_speed.py --checkpoint models/mnist/vae/latent-30/seed-0.pt --data data/prepared/mnist.npz --samples 1000

Without `--checkpoint` it times untrained VAEs built from params.yaml (the
default MLP [256, 128], latent sizes from `--latent-dims`, default 30):
the decoder's cost does not depend on its weights. Without `--data` it uses
random binary images. Target on a 2-core machine: K = 1000 over the 10 000
test images of one MLP model in under 2 minutes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from aebench.common.config import load_params
from aebench.common.layout import ModelKey
from aebench.common.runtime import generator, resolve_device, seed_everything
from aebench.data.binarize import fixed_targets
from aebench.data.prepared import load_prepared
from aebench.evaluation.likelihood import estimate_likelihood
from aebench.models.autoencoder import build_model, model_config
from aebench.models.checkpoint import load_model

TARGET_SECONDS = 120.0  # K = 1000, 10 000 images, one MLP model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, nargs="*", default=[], help="trained models (default: untrained VAEs)")
    parser.add_argument("--data", type=Path, help="prepared .npz (default: random binary images)")
    parser.add_argument("--images", type=int, default=10_000, help="test images to use")
    parser.add_argument("--samples", type=int, nargs="+", default=[200, 1000], help="values of K")
    parser.add_argument("--latent-dims", type=int, nargs="+", default=[30], help="for the untrained VAEs")
    parser.add_argument("--max-rows", type=int, help="decoder rows per pass (default: evaluate.iw_max_rows)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args()


def models(args: argparse.Namespace, params) -> list[tuple[str, torch.nn.Module]]:
    if args.checkpoint:
        return [(str(path), load_model(path)) for path in args.checkpoint]
    built = []
    seed = params.seeds[0]
    for latent_dim in args.latent_dims:
        seed_everything(seed)
        config = model_config(params, ModelKey("mnist", "vae", latent_dim).replicate(seed))
        hidden = "-".join(map(str, params.network.hidden))
        built.append((f"untrained vae {params.network.arch} {hidden} latent {latent_dim}", build_model(config).eval()))
    return built


def test_images(args: argparse.Namespace, params) -> torch.Tensor:
    seed = params.seeds[0]
    if args.data is None:
        return torch.bernoulli(torch.full((args.images, 1, 28, 28), 0.13), generator=generator(seed, "benchmark"))
    images, _ = load_prepared(args.data).split("test", limit=args.images)
    return fixed_targets(images, "dynamic", seed=seed, split="test")


def main() -> None:
    args = parse_args()
    params = load_params(args.params)
    device = resolve_device(params.device)
    targets = test_images(args, params)
    max_rows = args.max_rows or params.evaluate.iw_max_rows
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, {len(targets)} images, "
        f"batch {params.evaluate.iw_batch_images} images, {max_rows} decoder rows per pass"
    )
    for name, model in models(args, params):
        model.to(device)
        for samples in args.samples:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            estimates = estimate_likelihood(
                model,
                targets,
                samples=samples,
                batch_images=params.evaluate.iw_batch_images,
                max_rows=max_rows,
                generator=generator(params.seeds[0], "importance-sampling", device),
                device=device,
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            rows_per_second = len(targets) * samples / seconds
            print(
                f"{name}: K={samples}: {seconds:.1f} s ({rows_per_second / 1e3:.0f}k decoder rows/s), "
                f"nll_iw {estimates.nll_iw.mean():.2f}, neg_elbo {estimates.neg_elbo.mean():.2f} nats/image",
                flush=True,
            )
            if samples == 1000 and len(targets) == 10_000:
                verdict = "meets" if seconds < TARGET_SECONDS else "misses"
                print(f"  {verdict} the target of {TARGET_SECONDS:.0f} s for K=1000 over 10 000 images")


if __name__ == "__main__":
    main()
