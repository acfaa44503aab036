"""A throw-away SLURM + PostgreSQL + MLflow "cluster" on 127.0.0.1, for tests.

Each piece is a context manager that starts real daemons on free ports, keeps
their state in a subfolder of `root` (from `harness_root()`), and stops them on
the way out, also when the body raises:

    harness_root()                     a fresh folder under /tmp, removed at the end
    munge(root)                        munged, as the `munge` user; yields its socket
    slurm(root, cpus=2)                munge + slurmctld + slurmd, one node, one partition;
                                       yields the clients' environment ({"SLURM_CONF": ...});
                                       finished_array_tasks() reads the jobs' exit codes
    postgres(root)                     a PostgreSQL cluster (initdb + pg_ctl, as `postgres`)
                                       with a database and a user for MLflow; yields its URI
    mlflow_server(root, uri, artifacts)  `mlflow server` on that store, artifacts proxied to
                                       `artifacts`; yields the tracking URI once /health answers
    local_cluster(artifacts)           all of the above; yields a `LocalCluster` with the
                                       environment to run jobs in and how long each start took

`no_leftover_processes(root)` proves they stopped: every daemon process (munged,
slurmctld, slurmd, slurmstepd, postgres and its backends, mlflow server and its
uvicorn worker) works in a folder below `root`, so any live process still
working there after the block is a leftover: it is killed and reported as an
error. `local_cluster` checks itself that way; `harness_processes()` lists such
daemons machine-wide, by name, for a test to compare before and after.

Needs root (SlurmUser=root; munged and postgres run as their own users) and the
Debian packages `slurm-wlm`, `munge` and `postgresql`, plus `psycopg2` in the
Python running the tests (MLflow's PostgreSQL driver). `missing_requirements()`
names what is absent.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 60  # per daemon; each takes a few seconds on a 2-core machine
STOP_TIMEOUT_S = 15  # SIGTERM, then SIGKILL after this long
DAEMONS = ("munged", "slurmctld", "slurmd", "slurmstepd", "postgres")  # /proc/<pid>/comm
MLFLOW_DB, MLFLOW_USER, MLFLOW_PASSWORD = "mlflow", "mlflow", "mlflow-test"


# ---------------------------------------------------------------- what is needed


def _executable(name: str) -> str | None:
    """`name` on PATH or in /usr/sbin (munged, slurmctld, slurmd live there, off a user's PATH)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _postgres_bin(name: str) -> str | None:
    """Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<major>/bin, off PATH."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    return versions[-1] if versions else None


def missing_requirements() -> list[str]:
    """What this harness needs and does not find, in words (empty when all is there)."""
    missing = [f"`{tool}` (Debian package {package})"
               for tool, package in (("munged", "munge"), ("slurmctld", "slurm-wlm"), ("slurmd", "slurm-wlm"),
                                     ("sbatch", "slurm-wlm"))
               if _executable(tool) is None]
    missing += [f"`{tool}` (Debian package postgresql)" for tool in ("initdb", "pg_ctl") if _postgres_bin(tool) is None]
    try:
        import psycopg2  # noqa: F401  (MLflow's driver for postgresql:// URIs)
    except ImportError:
        missing.append("the Python package psycopg2 (pip install psycopg2-binary)")
    if os.geteuid() != 0:
        missing.append("root (slurmctld/slurmd run with SlurmUser=root)")
    return missing


# ---------------------------------------------------------------- processes


def _free_ports(n: int) -> list[int]:
    """`n` distinct ports that nothing listens on right now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _process_table() -> dict[tuple[int, str], str]:
    """Every live process as {(pid, start time): "comm cmdline"}; the start time tells a reused pid apart.

    Zombies are left out: they run nothing and hold no port, only an exit status
    for their parent. (pg_ctl's postmaster and slurmstepd are orphans whose
    parent becomes pid 1, which may reap them late.)
    """
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state, *_, start_time = stat[stat.rindex(")") + 2:].split()[:20]  # fields 3 and 22 of proc(5)
        if state not in "ZX":
            table[(int(entry), start_time)] = f"{comm} {cmdline}"
    return table


def _is_harness_daemon(description: str) -> bool:
    comm, _, cmdline = description.partition(" ")
    if comm in DAEMONS:
        return True
    # `python -m mlflow server ...` and the uvicorn worker it starts (`... mlflow.server.fastapi_app:app`)
    return "mlflow server" in cmdline or "mlflow.server" in cmdline


def processes_in(directory: Path) -> dict[tuple[int, str], str]:
    """Live processes whose working directory is `directory` or below it (also once deleted)."""
    found = {}
    for key, desc in _process_table().items():
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{key[0]}/cwd")).is_relative_to(directory):
                found[key] = desc
    return found


def harness_processes() -> dict[tuple[int, str], str]:
    """Live processes of the kinds of daemon this module starts, machine-wide, by name."""
    return {key: desc for key, desc in _process_table().items() if _is_harness_daemon(desc)}


@contextlib.contextmanager
def no_leftover_processes(root: Path, grace_s: float = 10.0) -> Iterator[None]:
    """Fail if a process started in the block still works below `root` after it.

    Processes still shutting down get `grace_s` seconds; what is left after that
    is killed (so the machine stays clean) and listed in the error.
    """
    before = set(processes_in(root))
    try:
        yield
    finally:
        deadline = time.monotonic() + grace_s
        while True:
            left = {key: desc for key, desc in processes_in(root).items() if key not in before}
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if left:
            listing = "\n".join(f"  pid {pid}: {desc}" for (pid, _), desc in sorted(left.items()))
            raise AssertionError(f"processes left behind (now killed):\n{listing}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not readable)"


def _as_user(name: str) -> dict:
    """Popen arguments that run a command as `name` (its own group, no root groups)."""
    return {"user": name, "group": name, "extra_groups": []}


def _chown(path: Path, name: str) -> None:
    shutil.chown(path, user=name, group=name)


class _Daemon:
    """One foreground daemon in its own process group, its output in `log`."""

    def __init__(self, name: str, argv: list[str], log: Path, **popen):
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True, **popen)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; its log:\n{_tail(self.log)}")

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL if it has not exited after STOP_TIMEOUT_S."""
        for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers that outlive the leader (e.g. uvicorn's) share its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def _wait_until(ready, what: str, daemons: list[_Daemon], timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll `ready()` until it is true; fail early, with the log, if a daemon dies."""
    deadline = time.monotonic() + timeout_s
    while True:
        for daemon in daemons:
            daemon.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {d.name} ({d.log}):\n{_tail(d.log)}" for d in daemons)
            raise TimeoutError(f"{what} not ready after {timeout_s} s\n{logs}")
        time.sleep(0.2)


@contextlib.contextmanager
def harness_root() -> Iterator[Path]:
    """A fresh folder under the system temp dir for the daemons' state, removed at the end.

    Not pytest's tmp_path: that sits below /tmp/pytest-of-<user> (mode 700),
    which the `munge` and `postgres` users cannot traverse.
    """
    path = Path(tempfile.mkdtemp(prefix="aebench-cluster-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _state_dir(root: Path, name: str, owner: str | None = None) -> Path:
    """`root`/`name`, new, world-traversable, owned by `owner` when given."""
    path = root / name
    path.mkdir(mode=0o755)
    if owner:
        _chown(path, owner)
    return path


# ---------------------------------------------------------------- munge + SLURM


@contextlib.contextmanager
def munge(root: Path) -> Iterator[Path]:
    """munged as the `munge` user, with a fresh key; yields the socket path."""
    state = _state_dir(root, "munge", owner="munge")
    key = state / "munge.key"
    key.write_bytes(os.urandom(1024))
    _chown(key, "munge")
    key.chmod(0o400)  # munged refuses a key others can read
    sock = state / "munge.socket"
    argv = [_executable("munged"), "--foreground", f"--key-file={key}", f"--socket={sock}",
            f"--pid-file={state / 'munged.pid'}", f"--seed-file={state / 'munged.seed'}",
            f"--log-file={state / 'munged.log'}"]
    daemon = _Daemon("munged", argv, state / "munged.out", cwd=state, **_as_user("munge"))
    try:
        _wait_until(sock.exists, "munged", [daemon])
        yield sock
    finally:
        daemon.stop()


def _slurm_conf(state: Path, *, munge_socket: Path, node: str, cpus: int, ctld_port: int, slurmd_port: int) -> str:
    return f"""\
ClusterName=aebench-test
SlurmctldHost={node}({HOST})
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={state}/ctld-state
SlurmdSpoolDir={state}/slurmd-spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
# No cgroups, no accounting daemon: what a container without systemd can do.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# One line per finished job (array tasks included) with its state and exit code.
JobCompType=jobcomp/filetxt
JobCompLoc={state}/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Trust the CPUs below rather than the hardware (a runner may have fewer or more).
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# `sbatch --wait` polls at 2, 8, 32, 32... s unless MinJobAge is short; 10 s caps it at 8 s.
MinJobAge=10
NodeName={node} NodeAddr={HOST} CPUs={cpus} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def slurm(root: Path, *, cpus: int = 2) -> Iterator[dict[str, str]]:
    """munged + slurmctld + slurmd for one node named `hostname -s`; yields {"SLURM_CONF": path}.

    Run the clients (sbatch, squeue, scontrol) with that variable in their environment.
    """
    node = socket.gethostname().split(".")[0]  # slurmd finds its NodeName by the short host name
    state = _state_dir(root, "slurm")
    with munge(root) as munge_socket:
        (state / "ctld-state").mkdir()
        (state / "slurmd-spool").mkdir()
        ctld_port, slurmd_port = _free_ports(2)
        conf = state / "slurm.conf"
        conf.write_text(_slurm_conf(state, munge_socket=munge_socket, node=node, cpus=cpus,
                                    ctld_port=ctld_port, slurmd_port=slurmd_port))
        env = {"SLURM_CONF": str(conf)}
        client_env = {**os.environ, **env}
        daemons: list[_Daemon] = []
        try:
            for name in ("slurmctld", "slurmd"):  # -D: stay in the foreground, our child
                daemons.append(_Daemon(name, [_executable(name), "-D", "-f", str(conf)], state / f"{name}.out",
                                       cwd=state, env=client_env))

            def node_idle() -> bool:
                sinfo = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T"], env=client_env,
                                       capture_output=True, text=True)
                return sinfo.returncode == 0 and sinfo.stdout.strip() == "idle"

            _wait_until(node_idle, "SLURM node (sinfo: idle)", daemons)
            yield env
        finally:
            _stop_slurm(daemons, client_env)


def finished_array_tasks(env: dict[str, str], array_job_id: str) -> dict[int, tuple[str, str]]:
    """{task id: (JobState, ExitCode)} of the finished tasks of a job array, from the job completion log."""
    tasks = {}
    with open(Path(env["SLURM_CONF"]).parent / "jobcomp.txt") as log:
        for line in log:
            record = dict(field.split("=", 1) for field in line.split())
            if record.get("ArrayJobId") == array_job_id:
                tasks[int(record["ArrayTaskId"])] = (record["JobState"], record["ExitCode"])
    return tasks


def _stop_slurm(daemons: list[_Daemon], client_env: dict[str, str]) -> None:
    """Cancel what still runs (slurmstepd ends its job's processes), then stop the daemons."""
    if daemons and daemons[0].process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):  # slurmctld not answering: stop it anyway
            subprocess.run(["scancel", "--full", "--user=root"], env=client_env, capture_output=True, timeout=10)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                squeue = subprocess.run(["squeue", "--noheader"], env=client_env, capture_output=True, text=True,
                                        timeout=10)
                if squeue.returncode != 0 or not squeue.stdout.strip():
                    break
                time.sleep(0.5)
    for daemon in reversed(daemons):  # slurmd first, then slurmctld
        daemon.stop()


# ---------------------------------------------------------------- PostgreSQL


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


@contextlib.contextmanager
def postgres(root: Path) -> Iterator[str]:
    """A PostgreSQL cluster on a free port of 127.0.0.1; yields the URI of a database MLflow owns.

    initdb and pg_ctl run as the `postgres` user (postgres refuses root), with the
    cluster in a fresh directory it owns. Durability is switched off (--no-sync,
    fsync=off): the data lives as long as the test.
    """
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    state = _state_dir(root, "postgres", owner="postgres")
    data, log = state / "data", state / "postgres.log"
    (port,) = _free_ports(1)
    as_postgres = {**_as_user("postgres"), "cwd": state}
    _run([initdb, "--pgdata", str(data), "--username=postgres", "--auth-local=trust",
          "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"], **as_postgres)
    options = f"-c listen_addresses={HOST} -p {port} -c unix_socket_directories={state} -c fsync=off"
    started = False
    try:
        _run([pg_ctl, "start", "--pgdata", str(data), "--log", str(log), "--wait", f"--timeout={START_TIMEOUT_S}",
              "-o", options], **as_postgres)
        started = True
        import psycopg2

        with contextlib.closing(psycopg2.connect(host=str(state), port=port, user="postgres",
                                                 dbname="postgres")) as admin:
            admin.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE ROLE {MLFLOW_USER} LOGIN PASSWORD %s", (MLFLOW_PASSWORD,))
                cursor.execute(f"CREATE DATABASE {MLFLOW_DB} OWNER {MLFLOW_USER}")
        yield f"postgresql+psycopg2://{MLFLOW_USER}:{MLFLOW_PASSWORD}@{HOST}:{port}/{MLFLOW_DB}"
    finally:
        if started:
            stop = subprocess.run([pg_ctl, "stop", "--pgdata", str(data), "--mode=fast", "--wait",
                                   f"--timeout={STOP_TIMEOUT_S}"], capture_output=True, **as_postgres)
            if stop.returncode != 0:
                _kill_postmaster(data)


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl cannot stop the server: SIGQUIT (immediate shutdown) to the postmaster."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
        time.sleep(2)


# ---------------------------------------------------------------- MLflow


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def mlflow_server(root: Path, backend_store_uri: str, artifacts_destination: Path) -> Iterator[str]:
    """`mlflow server` (this Python's mlflow) on a free port; yields its URI once /health answers.

    Artifacts are proxied (mlflow-artifacts:/): clients upload over HTTP and the
    files land under `artifacts_destination`/<experiment id>/<run id>/artifacts/.
    """
    artifacts_destination.mkdir(parents=True, exist_ok=True)
    (port,) = _free_ports(1)
    uri = f"http://{HOST}:{port}"
    state = _state_dir(root, "mlflow")
    daemon = _Daemon("mlflow server",
                     [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri,
                      "--artifacts-destination", str(artifacts_destination),
                      "--host", HOST, "--port", str(port), "--workers", "1"],
                     state / "mlflow-server.log", cwd=state,
                     # No GenAI job runner (7 huey worker processes); training runs do not use it.
                     env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        _wait_until(lambda: _answers(f"{uri}/health"), "mlflow server (/health)", [daemon])
        yield uri
    finally:
        daemon.stop()


# ---------------------------------------------------------------- all together


@dataclass
class LocalCluster:
    env: dict[str, str]  # for sbatch/squeue and the jobs: SLURM_CONF, MLFLOW_TRACKING_URI
    tracking_uri: str
    backend_store_uri: str
    artifact_root: Path
    start_seconds: dict[str, float] = field(default_factory=dict)  # slurm, postgres, mlflow


@contextlib.contextmanager
def local_cluster(artifact_root: Path, *, cpus: int = 2) -> Iterator[LocalCluster]:
    """SLURM, PostgreSQL and an MLflow server on 127.0.0.1, all stopped at the end (checked)."""
    start_seconds: dict[str, float] = {}

    def timed(name, manager):
        started = time.monotonic()
        value = stack.enter_context(manager)
        start_seconds[name] = round(time.monotonic() - started, 2)
        return value

    with harness_root() as root, no_leftover_processes(root), contextlib.ExitStack() as stack:
        slurm_env = timed("slurm", slurm(root, cpus=cpus))
        backend = timed("postgres", postgres(root))
        tracking_uri = timed("mlflow", mlflow_server(root, backend, artifact_root))
        yield LocalCluster(env={**slurm_env, "MLFLOW_TRACKING_URI": tracking_uri}, tracking_uri=tracking_uri,
                           backend_store_uri=backend, artifact_root=artifact_root, start_seconds=start_seconds)
