"""Training throughput: aebench's trainer against the usual per-sample DataLoader loop.

Both train the pytorch/examples VAE configuration (MLP 784-400-20, ReLU, batch
128, Adam 1e-3, BCE + KL on grey-level MNIST, the 60 000 official training
images) for N epochs, each followed by a pass over the 10 000 test images, and
print images per second, the ratio, and each one's final test loss in nats per
image. The reference loop is the common way: a torchvision MNIST dataset with
ToTensor applied per sample, and a shuffling DataLoader.

    python benchmarks/train_throughput.py --raw .cache/raw/mnist --epochs 10

`--raw` is a folder holding the four uncompressed official IDX files (what the
prepare stage caches); they are symlinked into the layout torchvision expects.
Target on a 2-core machine: at least 4x the reference's images per second, with
a test loss within 0.5 nats of it.

It also prints how close the trainer's arithmetic comes to the machine: the
GFLOP/s of its training (every Linear layer's matrix products, forward and
backward, validation passes included) against the rate of one fp32 GEMM of
the network's largest layer shape (batch x 784 x first hidden width) at the
same thread count, as a ratio. Both rates are per CPU second of this process
(with one thread: the wall time of a quiet machine; unlike the wall time, it
holds on a machine shared with other jobs). `--network study`
trains the params file's MLP and `--variant` (dynamic binarization, as the
study) instead of the examples' 784-400-20; `--no-reference` skips the
reference loop. The stages train with one thread per job: `--threads 1`
measures what they get.

    python benchmarks/train_throughput.py --raw .cache/raw/mnist --network study --threads 1 --epochs 3 --no-reference
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from aebench.common.config import load_params
from aebench.common.layout import ModelKey
from aebench.common.runtime import resolve_device, seed_everything
from aebench.models.autoencoder import build_model, model_config
from aebench.training.trainer import TrainingPaths, train_replicate

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
BATCH, LR, HIDDEN, LATENT = 128, 1e-3, 400, 20


def torchvision_root(raw: Path, folder: Path) -> Path:
    """`folder/MNIST/raw/<idx file>` symlinks: the layout torchvision.datasets.MNIST reads."""
    target = folder / "MNIST" / "raw"
    target.mkdir(parents=True)
    for name in IDX_FILES:
        source = raw / name
        if not source.is_file():
            sys.exit(f"error: {source}: missing (run `dvc repro prepare@mnist`, which caches the IDX files)")
        (target / name).symlink_to(source.resolve())
    return folder


# --- the reference loop, written the common way -----------------------------


class ReferenceVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(784, HIDDEN)
        self.mu = nn.Linear(HIDDEN, LATENT)
        self.logvar = nn.Linear(HIDDEN, LATENT)
        self.decoder_hidden = nn.Linear(LATENT, HIDDEN)
        self.decoder_out = nn.Linear(HIDDEN, 784)

    def forward(self, x):
        h = F.relu(self.hidden(x.view(-1, 784)))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder_out(F.relu(self.decoder_hidden(z))), mu, logvar


def reference_loss(logits, x, mu, logvar):
    """Summed over the batch: BCE over pixels plus KL(q || N(0, I))."""
    bce = F.binary_cross_entropy_with_logits(logits, x.view(-1, 784), reduction="sum")
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum()
    return bce + kl


def run_reference(root: Path, epochs: int, device: torch.device, seed: int) -> tuple[float, float]:
    """(training images per second, final test loss in nats per image)."""
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    train_set = datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor())
    test_set = datasets.MNIST(root, train=False, download=False, transform=transforms.ToTensor())
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=BATCH, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=BATCH)
    model = ReferenceVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for x, _ in train_loader:
            x = x.to(device)
            optimizer.zero_grad()
            loss = reference_loss(*_with_input(model, x))
            loss.backward()
            optimizer.step()
        test_loss = 0.0
        model.eval()
        with torch.no_grad():
            for x, _ in test_loader:
                x = x.to(device)
                test_loss += reference_loss(*_with_input(model, x)).item()
        test_loss /= len(test_set)
        print(f"  reference epoch {epoch}: test loss {test_loss:.2f}", flush=True)
    seconds = time.perf_counter() - started
    return len(train_set) * epochs / seconds, test_loss


def _with_input(model, x):
    logits, mu, logvar = model(x)
    return logits, x, mu, logvar


# --- aebench ----------------------------------------------------------------


@contextmanager
def counted_linear_flops(model: nn.Module):
    """Counts the floating-point operations of every nn.Linear's matrix products while active: yields a list
    whose single entry grows. Forward 2*rows*in*out; under autograd the weight gradient as much again, and the
    input gradient as much again when the input needs one (not for the first layer, whose input is the data)."""
    total = [0]

    def count(module: nn.Linear, inputs, _output) -> None:
        x = inputs[0]
        rows = x.numel() // module.in_features
        products = 2 * rows * module.in_features * module.out_features
        if torch.is_grad_enabled() and module.weight.requires_grad:
            products *= 3 if x.requires_grad else 2
        total[0] += products

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        yield total
    finally:
        for hook in hooks:
            hook.remove()


def gemm_gflops(rows: int, inner: int, columns: int, seconds: float = 1.0) -> float:
    """The rate of one fp32 product (rows x inner) @ (inner x columns), as nn.Linear computes it, at the current
    torch thread count, per CPU second: the best of repeated timings over about `seconds` of CPU."""
    x, weight = torch.rand(rows, inner), torch.rand(columns, inner)
    for _ in range(20):
        F.linear(x, weight)  # warm-up
    best, deadline = float("inf"), time.process_time() + seconds
    while time.process_time() < deadline:
        started = time.process_time()
        for _ in range(20):
            F.linear(x, weight)
        best = min(best, (time.process_time() - started) / 20)
    return 2 * rows * inner * columns / best / 1e9


def aebench_config(network: str, variant: str, params_path: Path, epochs: int, seed: int) -> dict:
    """The examples' VAE (784-400-20, grey-level pixels), or the params file's own network and variant."""
    params = load_params(params_path)
    if network == "study":
        config = model_config(params, ModelKey("mnist", variant, max(params.latent_dims)).replicate(seed))
        config["train"]["epochs"] = epochs
        return config
    config = model_config(params, ModelKey("mnist", "vae", LATENT).replicate(seed))
    config["data"]["binarize"] = "none"  # grey-level pixels, as the reference
    config["variant"].update(objective="kl_split", beta=1.0, gamma=1.0)
    config["network"].update(arch="mlp", hidden=[HIDDEN], activation="relu", init="default", code_activation="none")
    config["likelihood"]["name"] = "bernoulli"
    config["train"].update(epochs=epochs, batch_size=BATCH, lr=LR, mc_samples=1, drop_last=False)
    return config


def run_aebench(root: Path, device: torch.device, config: dict, seed: int) -> tuple[float, float, float]:
    """The configuration through `train_replicate`, data held in memory as one tensor:
    (training images per second, final test loss in nats per image, achieved GFLOP/s per CPU second)."""
    from torchvision import datasets

    def images(train: bool) -> torch.Tensor:  # (N, 1, 28, 28) float in [0, 1]
        return datasets.MNIST(root, train=train, download=False).data.unsqueeze(1).float().div_(255.0)

    started = time.perf_counter()  # loading the tensors counts: the reference pays for its decoding too
    train_images, test_images = images(True), images(False)
    seed_everything(seed)
    model = build_model(config)
    with tempfile.TemporaryDirectory() as scratch, counted_linear_flops(model) as flops:
        paths = TrainingPaths(
            checkpoint=Path(scratch, "model.pt"), history=Path(scratch, "history.csv"), resume=Path(scratch, "resume.pt")
        )
        # The test split plays the validation role: evaluated after every epoch, like the reference.
        cpu_started = time.process_time()
        result = train_replicate(model, train_images=train_images, val_images=test_images, paths=paths, device=device)
        cpu_seconds = time.process_time() - cpu_started
    seconds = time.perf_counter() - started
    for row, epoch_seconds in zip(result.history, result.epoch_seconds):
        print(f"  aebench epoch {row['epoch']}: test loss {row['val_loss']:.2f} ({epoch_seconds:.1f} s)", flush=True)
    epochs = config["train"]["epochs"]
    return len(train_images) * epochs / seconds, result.history[-1]["val_loss"], flops[0] / cpu_seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, default=Path(".cache/raw/mnist"), help="folder with the 4 MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--network", choices=("examples", "study"), default="examples",
                        help="examples: 784-400-20 on grey levels; study: the params file's MLP and --variant")
    parser.add_argument("--variant", default="vae", help="with --network study: the params variant to train")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for both loops (default: torch's choice, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.epochs} epochs", flush=True)
    config = aebench_config(args.network, args.variant, args.params, args.epochs, args.seed)
    if config["network"]["arch"] != "mlp":
        sys.exit(f"error: network.arch {config['network']['arch']!r}: the GFLOP/s count covers MLPs only")
    with tempfile.TemporaryDirectory() as folder:
        root = torchvision_root(args.raw, Path(folder))
        ours, our_loss, achieved = run_aebench(root, device, config, args.seed)
        if not args.no_reference:
            reference, reference_loss_value = run_reference(root, args.epochs, device, args.seed)
    widest = config["network"]["hidden"][0] if config["network"]["hidden"] else config["latent_dim"]
    batch = config["train"]["batch_size"]
    gemm = gemm_gflops(batch, 784, widest)
    print(f"aebench trainer : {ours:9.0f} images/s, test loss {our_loss:.2f} nats/image")
    print(f"arithmetic      : {achieved:6.1f} GFLOP/s in training; one {batch}x784x{widest} fp32 GEMM "
          f"{gemm:6.1f} GFLOP/s ({torch.get_num_threads()} thread(s)); ratio {achieved / gemm:.2f}")
    if args.no_reference:
        return
    print(f"reference loop  : {reference:9.0f} images/s, test loss {reference_loss_value:.2f} nats/image")
    print(f"ratio           : {ours / reference:.2f}x (target >= 4x); "
          f"loss difference {our_loss - reference_loss_value:+.2f} nats (target within 0.5)")


if __name__ == "__main__":
    main()
