"""Outputs are atomic, temporaries stay out of DVC's folders, unwritable outputs are found before any work."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from aebench.common.errors import DataError
from aebench.common.files import (
    OutputError,
    atomic_path,
    check_writable,
    file_sha256,
    read_npz,
    remove_stale_temporaries,
    workspace_of,
    write_json,
    write_npz,
)


def dvc_workspace(path: Path) -> Path:
    (path / ".dvc").mkdir(parents=True)
    return path


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --- atomic outputs ---------------------------------------------------------------


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert list(target.parent.iterdir()) == [target]


def test_failure_leaves_no_output_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_leaves_no_output_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "part").write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_version(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(ValueError):
        write_json(target, {"v": float("nan")})  # NaN is not JSON: refused, old file kept
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_directory_outputs_replace_the_old_folder(tmp_path):
    target = tmp_path / "figures"
    target.mkdir()
    (target / "stale.png").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.png").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.png"]


def test_in_a_dvc_workspace_temporaries_live_in_its_cache_never_beside_the_output(tmp_path):
    workspace = dvc_workspace(tmp_path / "ws")
    target = workspace / "metrics" / "mnist" / "seed-0.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == workspace / ".cache" / "tmp"
        assert tmp.name.startswith(f".seed-0.json.{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_text("{}")
        assert list(target.parent.iterdir()) == []  # nothing among the outputs while it is written
    assert target.read_text() == "{}"
    assert list((workspace / ".cache" / "tmp").iterdir()) == []


def test_a_failure_in_a_workspace_leaves_its_cache_clean(tmp_path):
    workspace = dvc_workspace(tmp_path / "ws")
    with pytest.raises(RuntimeError):
        with atomic_path(workspace / "out" / "a.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list((workspace / ".cache" / "tmp").iterdir()) == []
    assert list((workspace / "out").iterdir()) == []


def test_workspace_of_a_params_file(tmp_path):
    workspace = dvc_workspace(tmp_path / "ws")
    profile = workspace / "replicate" / "profile" / "params.yaml"
    profile.parent.mkdir(parents=True)
    assert workspace_of(profile) == workspace.resolve()  # a profile's params belong to the workspace
    plain = tmp_path / "elsewhere" / "params.yaml"
    plain.parent.mkdir()
    assert workspace_of(plain) == plain.parent.resolve()  # outside DVC: the file's folder


# --- stale temporaries -----------------------------------------------------------


def test_remove_stale_temporaries_removes_a_dead_processes_and_keeps_a_live_ones(tmp_path):
    folder = tmp_path / "tmp"
    folder.mkdir()
    dead = dead_pid()
    stale_file = folder / f".seed-0.pt.{dead}.abc123.tmp"
    stale_file.write_bytes(b"half")
    stale_folder = folder / f".figures.{dead}.def456.tmp"
    stale_folder.mkdir()
    (stale_folder / "a.png").write_bytes(b"x")
    live = folder / f".seed-1.pt.{os.getpid()}.ghi789.tmp"
    live.write_bytes(b"being written")
    unrelated = folder / "notes.txt"
    unrelated.write_text("keep")

    removed = remove_stale_temporaries(folder)

    assert sorted(removed) == sorted([stale_file, stale_folder])
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, "notes.txt"])


def test_remove_stale_temporaries_of_a_missing_folder_is_nothing(tmp_path):
    assert remove_stale_temporaries(tmp_path / "absent") == []


# --- other filesystems and full disks (tmpfs mounts: root only) -------------------------


@pytest.fixture
def mount_tmpfs():
    """mount_tmpfs(folder, size) mounts a fresh tmpfs on `folder`; all are unmounted after the test."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str = "4m") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_an_output_folder_linked_to_another_filesystem_is_written_with_temporaries_there(tmp_path, mount_tmpfs):
    workspace = dvc_workspace(tmp_path / "ws")
    disk = mount_tmpfs(tmp_path / "disk")
    (workspace / "models").symlink_to(disk)  # models/ on a larger disk
    target = workspace / "models" / "mnist" / "vae" / "latent-2" / "seed-0.pt"
    check_writable([target])
    with atomic_path(target) as tmp:
        assert tmp.parent == workspace / "models" / ".aebench-tmp"  # on the disk, outside every stage's output
        assert os.stat(tmp.parent).st_dev == os.stat(disk).st_dev
        tmp.write_bytes(b"model")
    assert (disk / "mnist" / "vae" / "latent-2" / "seed-0.pt").read_bytes() == b"model"
    assert list((disk / ".aebench-tmp").iterdir()) == []
    write_json(workspace / "metrics" / "a.json", {})  # the workspace's own filesystem still uses .cache/tmp
    assert list((workspace / ".cache" / "tmp").iterdir()) == []


def test_a_killed_writers_temporary_on_another_filesystem_is_cleared(tmp_path, mount_tmpfs):
    workspace = dvc_workspace(tmp_path / "ws")
    (workspace / "models").symlink_to(mount_tmpfs(tmp_path / "disk"))
    leftovers = workspace / "models" / ".aebench-tmp"
    leftovers.mkdir()
    stale = leftovers / f".seed-0.pt.{dead_pid()}.x1.tmp"
    stale.write_bytes(b"half")
    write_json(workspace / "models" / "a.json", {})
    assert list(leftovers.iterdir()) == []


def test_dvc_ignores_the_temporaries_folder():
    ignored = (Path(__file__).resolve().parents[1] / ".dvcignore").read_text().splitlines()
    assert ".aebench-tmp/" in ignored


def test_a_full_disk_names_the_file_being_written(tmp_path, mount_tmpfs):
    workspace = dvc_workspace(tmp_path / "ws")
    (workspace / "latent").symlink_to(mount_tmpfs(tmp_path / "small", size="64k"))
    target = workspace / "latent" / "mnist" / "seed-0.npz"
    with pytest.raises(OutputError) as caught:
        write_npz(target, codes=np.zeros((1000, 100)))  # 800 kB into 64 kB
    assert str(caught.value) == f"{target}: cannot write (No space left on device)"
    assert not target.exists() and list((workspace / "latent" / ".aebench-tmp").iterdir()) == []


def test_a_full_disk_inside_nested_writes_names_every_file_being_written(tmp_path, mount_tmpfs):
    folder = mount_tmpfs(tmp_path / "small", size="64k")
    with pytest.raises(OutputError) as caught:
        with atomic_path(folder / "a.bin") as a, atomic_path(folder / "b.bin") as b:
            b.write_bytes(b"")
            a.write_bytes(bytes(200_000))
    assert str(caught.value) == f"{folder / 'b.bin'} or {folder / 'a.bin'}: cannot write (No space left on device)"
    assert list(folder.iterdir()) == []


def test_an_error_about_another_file_is_left_as_it_is(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes((tmp_path / "missing-input").read_bytes())


# --- check_writable -------------------------------------------------------------------


def test_check_writable_creates_the_folders_and_leaves_nothing_behind(tmp_path):
    workspace = dvc_workspace(tmp_path / "ws")
    outputs = [workspace / "models" / "mnist" / "vae" / "latent-2" / "seed-0.pt", workspace / "runinfo" / "a.json"]
    check_writable(outputs)
    assert all(path.parent.is_dir() for path in outputs)
    assert all(list(path.parent.iterdir()) == [] for path in outputs)  # no probe file left
    assert list((workspace / ".cache" / "tmp").iterdir()) == []


def test_a_file_where_a_folder_is_needed_is_named(tmp_path):
    (tmp_path / "models").write_text("not a folder")
    with pytest.raises(OutputError) as caught:
        check_writable([tmp_path / "models" / "mnist" / "seed-0.pt"])
    assert str(caught.value) == f"{tmp_path / 'models' / 'mnist'}: cannot write outputs here (Not a directory)"


def as_nobody(function) -> tuple[int, str]:
    """Run `function()` in a forked child that has dropped root for `nobody`: (exit code, what it printed).

    A fork, not `subprocess.run(user="nobody")`: the venv's interpreter may live under /root, which
    `nobody` cannot execute; the forked child already holds the library in memory.
    """
    import pwd

    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            message, code = function()
            os.write(write_end, message.encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        printed = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), printed


def test_a_read_only_folder_is_named(tmp_path):
    """As root (who may write anywhere) the check runs as `nobody`; otherwise as ourselves."""
    if os.geteuid() == 0:
        base = Path(tempfile.mkdtemp(prefix="aebench-readonly-"))  # pytest's tmp_path is private to root
        locked = base / "locked"
        try:
            base.chmod(0o755)
            locked.mkdir()
            locked.chmod(0o555)

            def check() -> tuple[str, int]:
                assert os.geteuid() != 0
                try:
                    check_writable([locked / "seed-0.pt"])
                except OutputError as err:
                    return str(err), 3
                return "written", 0

            code, printed = as_nobody(check)
            assert (code, printed) == (3, f"{locked}: cannot write outputs here (Permission denied)")
            assert list(locked.iterdir()) == []
        finally:
            locked.chmod(0o755)
            shutil.rmtree(base)
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            if os.access(locked, os.W_OK):
                pytest.skip("this user can write into a 0o555 folder")
            with pytest.raises(OutputError) as caught:
                check_writable([locked / "seed-0.pt"])
            assert str(caught.value) == f"{locked}: cannot write outputs here (Permission denied)"
        finally:
            locked.chmod(0o755)


# --- deterministic .npz files ----------------------------------------------------------


def test_write_npz_bytes_depend_on_the_arrays_alone(tmp_path):
    arrays = {"mu": np.arange(12, dtype=np.float32).reshape(4, 3), "labels": np.array([3, 1, 4, 1], dtype=np.int64)}
    write_npz(tmp_path / "a.npz", **arrays)
    time.sleep(2.1)  # a zip records times to 2 s: np.savez would stamp another
    write_npz(tmp_path / "b.npz", **arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "b.npz") as loaded:
        assert loaded.files == ["mu", "labels"]
        np.testing.assert_array_equal(loaded["mu"], arrays["mu"])
        assert loaded["labels"].dtype == np.int64
    write_npz(tmp_path / "c.npz", **{**arrays, "labels": np.array([3, 1, 4, 2])})
    assert (tmp_path / "c.npz").read_bytes() != (tmp_path / "a.npz").read_bytes()


def test_write_npz_refuses_pickled_objects_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_npz(tmp_path / "objects.npz", bad=np.array([{"a": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_read_npz_names_a_missing_or_corrupt_file(tmp_path):
    write_npz(tmp_path / "good.npz", x=np.zeros(3))
    assert read_npz(tmp_path / "good.npz", error=DataError, missing="gone", unreadable="bad")["x"].tolist() == [0.0] * 3
    with pytest.raises(DataError, match=rf"^{tmp_path / 'absent.npz'}: gone$"):
        read_npz(tmp_path / "absent.npz", error=DataError, missing="gone", unreadable="bad")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:40])
    with pytest.raises(DataError, match=rf"^{truncated}: bad \("):
        read_npz(truncated, error=DataError, missing="gone", unreadable="bad")


def test_file_sha256_reads_in_blocks_and_hashes_every_byte(tmp_path):
    content = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # three whole blocks and a partial one
    path = tmp_path / "blob"
    path.write_bytes(content)
    assert file_sha256(path) == hashlib.sha256(content).hexdigest()
    path.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # the last byte of the partial block
    assert file_sha256(path) != hashlib.sha256(content).hexdigest()
