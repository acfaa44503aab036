"""What a profile's models cost per training step, without data: CPU seconds of one thread.

`profile_cost.py` runs the real train stage on the prepared data for whole
epochs; this one needs neither and takes seconds to a few minutes: it builds
each model of a profile (latent size 2 unless given), feeds it `--steps`
batches of the profile's batch size of random digit-like images, and times
forward, backward and Adam's step (fused on the CPU, as the trainer does)
with the CPU time of its one thread, so that other processes on a shared
machine do not count. It prints each model's milliseconds per step, seconds
per epoch of the study's 55 000 training images, and the single-thread hours
of the profile's full length (every variant and seed for its epochs).

    python benchmarks/step_cost.py replicate/profiles/ae-vs-vae-2d.yaml replicate/profiles/ae-vs-vae-2d-mlp.yaml

`--compile` times the same steps with the encoder and decoder compiled by
`torch.compile` (inductor; its compilation happens in the warm-up steps and
is not timed): run it beside a run without, e.g.
`python benchmarks/step_cost.py params.yaml --latent 30 --steps 100 [--compile]`.

Compare profiles measured in one run only: a loaded machine slows every
thread (caches, memory bandwidth) even in CPU time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from aebench.common.config import load_params
from aebench.common.layout import ModelKey
from aebench.models.autoencoder import build_model, model_config

TRAIN_IMAGES = 55_000  # the study's training split: 60 000 less the 5 000 validation images
WARM_UP = 3  # steps before the clock starts (first-call allocations, and compilation with --compile)


def seconds_per_step(model: torch.nn.Module, lr: float, images: torch.Tensor, batch: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    noise = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        loss = model.loss_terms(images[i * batch:(i + 1) * batch], generator=noise)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for i in range(WARM_UP):
        step(i)
    steps = len(images) // batch - WARM_UP
    started = time.thread_time()
    for i in range(WARM_UP, WARM_UP + steps):
        step(i)
    return (time.thread_time() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path, help="params files (a profile, or params.yaml)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model")
    parser.add_argument("--latent", type=int, default=2, help="latent size of the models built")
    parser.add_argument("--compile", action="store_true", help="compile the encoder and decoder (torch.compile)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.profiles:
        params = load_params(path)
        batch = params.train.batch_size
        images = torch.rand((args.steps + WARM_UP) * batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        images = images**3  # mostly dark, as digits are
        for variant in params.variants:
            torch.manual_seed(0)
            model = build_model(model_config(params, ModelKey(params.datasets[0], variant, args.latent).replicate(0)))
            if args.compile:
                model.encoder, model.decoder = torch.compile(model.encoder), torch.compile(model.decoder)
            seconds = seconds_per_step(model, params.train.lr, images, batch)
            epoch = seconds * -(-TRAIN_IMAGES // batch)
            hours = epoch * params.train.epochs * len(params.seeds) / 3600
            print(f"{path.stem} {variant} ({params.network.arch}{', compiled' if args.compile else ''}): {seconds * 1e3:.1f} ms/step at batch {batch}, "
                  f"{epoch:.0f} s/epoch; {params.train.epochs} epochs x {len(params.seeds)} seeds: {hours:.1f} h "
                  "on one thread", flush=True)


if __name__ == "__main__":
    main()
