"""Would one process training many models at once pay? Step time of N models stacked, against N one by one.

The study trains one model per process: on a CPU that fills one core each,
but on a GPU a 784-256-128-30 MLP at batch 128 leaves the device mostly idle.
This measures what training them together buys:
the N models of a stage (the seeds of one model) with their
parameters stacked (`torch.func.stack_module_state`), one forward and
backward for all of them through `torch.func.vmap` over the project's own
objective (`Autoencoder.loss_terms`, called by `functional_call`), and one
fused Adam step over the stacked tensors: what the train stage does on a GPU
(`aebench.training.stacked`). Adam is elementwise, so the
stacked step is each model's own step; each model draws its own batch.

It prints, per variant, milliseconds per model and step one by one and
stacked, their ratio, and the largest difference between the per-model
losses of the two paths after `--steps` steps on the same batches (the
stacked path must train the same models): each model draws its noise from
its own generator, seeded alike in both paths, and the stacked path passes
it in as the train stage does (`aebench.training.stacked.StackedModels`,
whose stacked loss this measures). On CUDA (used when present) the clock waits for
the device. Run it on the GPU of a lent device machine, e.g.

    python benchmarks/batched_step.py params.yaml --latent 30 --models 3 9 --steps 50

CPU times are of this process (all its threads, `--threads`, default 1 as the
study's workers run); GPU times are wall times.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from aebench.common.config import load_params
from aebench.common.layout import ModelKey
from aebench.models.autoencoder import Autoencoder, build_model, model_config
from aebench.training.stacked import StackedModels
from aebench.training.trainer import adam

WARM_UP = 3  # steps before the clock starts (first-call allocations)


def noise_generators(count: int, device: torch.device) -> list[torch.Generator]:
    """One noise generator per model, seeded alike for both paths."""
    return [torch.Generator(device=device).manual_seed(seed) for seed in range(count)]


def one_by_one(models: list[Autoencoder], lr: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A step function training each model in turn on its own batch: batches (N, B, ...) -> losses (N,)."""
    device = next(models[0].parameters()).device
    optimizers = [adam(m.parameters(), lr=lr, device=device) for m in models]
    generators = noise_generators(len(models), device)

    def step(batches: torch.Tensor) -> torch.Tensor:
        losses = []
        for model, optimizer, generator, batch in zip(models, optimizers, generators, batches):
            loss = model.loss_terms(batch, generator=generator)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses)

    return step


def stacked(models: list[Autoencoder], lr: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The same step for all models at once: stacked weights, one vmapped forward and backward, one Adam step."""
    stack = StackedModels(models)
    device = next(models[0].parameters()).device
    optimizer = adam(stack.params.values(), lr=lr, device=device)
    generators = noise_generators(len(models), device)

    def step(batches: torch.Tensor) -> torch.Tensor:
        noise = stack.draw_noise(batches.shape[1], generators)  # each model's eps from its own generator
        losses = stack.loss_terms(batches, noise)["loss"]  # (N,): the models are independent, so
        optimizer.zero_grad(set_to_none=True)  # the gradient of their sum is each one's own
        losses.sum().backward()
        optimizer.step()
        return losses.detach()

    return step


def timed(step: Callable[[torch.Tensor], torch.Tensor], batches: torch.Tensor, device: torch.device) -> tuple[float, torch.Tensor]:
    """(seconds per step, the last step's losses) over batches (steps, N, B, ...), after WARM_UP steps."""
    for i in range(WARM_UP):
        step(batches[i])
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = clock()
    for i in range(WARM_UP, len(batches)):
        losses = step(batches[i])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (clock() - started) / (len(batches) - WARM_UP), losses


def build(params, variant: str, latent: int, count: int, device: torch.device) -> list[Autoencoder]:
    """`count` models of one variant, as seeds 0..count-1 would initialise them."""
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(build_model(model_config(params, ModelKey(params.datasets[0], variant, latent).replicate(seed))).to(device))
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", type=Path, help="params file (params.yaml or a profile)")
    parser.add_argument("--latent", type=int, default=30, help="latent size of the models built")
    parser.add_argument("--models", type=int, nargs="+", default=[3], help="how many models to stack (several: one run each)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    params = load_params(args.params)
    batch = params.train.batch_size
    print(f"device {device}{' (' + torch.cuda.get_device_name() + ')' if device.type == 'cuda' else f', {args.threads} thread(s)'}; "
          f"batch {batch}, latent {args.latent}, {args.steps} timed steps after {WARM_UP}", flush=True)
    for count in args.models:
        shape = (WARM_UP + args.steps, count, batch, 1, 28, 28)
        batches = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) ** 3).to(device)  # mostly dark, as digits are
        for variant in params.variants:
            models = build(params, variant, args.latent, count, device)
            loop_seconds, loop_losses = timed(one_by_one(models, params.train.lr), batches, device)
            stack_seconds, stack_losses = timed(stacked(build(params, variant, args.latent, count, device), params.train.lr), batches, device)
            difference = (loop_losses - stack_losses).abs().max().item()
            print(f"{count} x {variant}: {loop_seconds / count * 1e3:.2f} ms per model-step one by one, "
                  f"{stack_seconds / count * 1e3:.2f} stacked ({loop_seconds / stack_seconds:.2f}x); losses after "
                  f"{WARM_UP + args.steps} steps differ by at most {difference:.2e}", flush=True)


if __name__ == "__main__":
    main()
