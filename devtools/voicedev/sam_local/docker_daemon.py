"""A Docker daemon for `sam local`: the one already reachable (DOCKER_HOST or the default socket),
else a private `dockerd` started here and stopped by its pid when the run ends.

The private daemon has its own data root, exec root, socket and pid file, so it never touches a
system Docker, and its own bridge address with `--iptables=false --ip-forward=false
--ip-masq=false`: containers reach the host (the bridge address, where the moto endpoint listens)
and nothing beyond it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRIVATE_ROOT = Path(os.environ.get("VOICE_DOCKER_ROOT", "/var/lib/voice-docker"))
PRIVATE_RUN = Path(os.environ.get("VOICE_DOCKER_RUN", "/run/voice-docker"))
PRIVATE_SOCKET = PRIVATE_RUN / "docker.sock"
# A private-use /24 that Docker's default pools (172.17-172.31.x.0/16 handed out from the bottom,
# 192.168.x) rarely reach; VOICE_DOCKER_BIP overrides it.
PRIVATE_BIP = os.environ.get("VOICE_DOCKER_BIP", "172.31.250.1/24")


class DockerError(RuntimeError):
    pass


@dataclass
class Docker:
    """The Docker CLI pointed at one daemon."""

    host: str | None = None
    """DOCKER_HOST value (None: the CLI's default)."""
    started_pid: int | None = None
    """The dockerd this run started (stopped by `stop`), or None when it was already running."""
    _log: Path | None = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.host:
            env["DOCKER_HOST"] = self.host
        return env

    def cli(self) -> list[str]:
        return ["docker", *(["--host", self.host] if self.host else [])]

    def _out(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.cli(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def reachable(self) -> bool:
        try:
            return self._out("version", "--format", "{{.Server.Version}}", timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def image_exists(self, name: str) -> bool:
        return self._out("image", "inspect", name).returncode == 0

    def image_label(self, name: str, label: str) -> str | None:
        result = self._out("image", "inspect", "--format", "{{json .Config.Labels}}", name)
        if result.returncode != 0:
            return None
        labels: dict[str, str] | None = json.loads(result.stdout or "null")
        return (labels or {}).get(label)

    def pull(self, name: str, timeout: float = 120) -> bool:
        try:
            return self._out("pull", "--quiet", name, timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def bridge_gateway(self) -> str:
        """The host's address on the default bridge: what a container reaches the host at."""
        result = self._out("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}")
        if result.returncode != 0:
            raise DockerError(f"docker network inspect bridge failed: {result.stderr.strip()}")
        configs: list[dict[str, Any]] = json.loads(result.stdout or "[]") or []
        for config in configs:
            if config.get("Gateway"):
                return str(config["Gateway"])
        for config in configs:  # older daemons leave Gateway out: the subnet's first address
            subnet = str(config.get("Subnet", ""))
            if "." in subnet:
                base = subnet.split("/")[0].rsplit(".", 1)[0]
                return f"{base}.1"
        raise DockerError("the bridge network has no IPv4 gateway (is dockerd running with --bridge=none?)")

    def remove_containers(self, label: str) -> None:
        """Remove containers SAM left behind (SAM labels its containers)."""
        result = self._out("ps", "-aq", "--filter", f"label={label}")
        ids = result.stdout.split()
        if ids:
            self._out("rm", "-f", *ids)

    def remove_images(self, reference: str) -> None:
        """Remove the images matching `reference` (e.g. SAM's derived images of a rebuilt base)."""
        ids = sorted(set(self._out("images", "-q", "--filter", f"reference={reference}").stdout.split()))
        if ids:
            self._out("rmi", "-f", *ids)

    def stop(self) -> None:
        """Stop the dockerd this run started (by its pid), waiting for it to exit."""
        if self.started_pid is None:
            return
        pid, self.started_pid = self.started_pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
        print(f"stopped the private dockerd (pid {pid})", flush=True)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _why_not(log: Path) -> str:
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:] if log.exists() else []
    return "\n    ".join(tail) or "(no output)"


def ensure_docker(*, allow_start: bool = True, wait_seconds: float = 60) -> Docker:
    """A reachable daemon: DOCKER_HOST's or the default socket's, else the private one (already
    running from an earlier run, or started now). Raises DockerError with the reason otherwise."""
    if shutil.which("docker") is None:
        raise DockerError("the docker CLI is not installed (apt-get install -y docker.io)")
    default = Docker(host=os.environ.get("DOCKER_HOST") or None)
    if default.reachable():
        return default
    private = Docker(host=f"unix://{PRIVATE_SOCKET}")
    if private.reachable():
        return private
    if not allow_start:
        raise DockerError("no Docker daemon is reachable (DOCKER_HOST, /var/run/docker.sock)")
    if shutil.which("dockerd") is None:
        raise DockerError(
            "no Docker daemon is reachable and dockerd is not installed (apt-get install -y docker.io)"
        )
    if os.geteuid() != 0:
        raise DockerError(
            "no Docker daemon is reachable, and starting one needs root (or start Docker yourself)"
        )
    PRIVATE_ROOT.mkdir(parents=True, exist_ok=True)
    PRIVATE_RUN.mkdir(parents=True, exist_ok=True)
    log = PRIVATE_RUN / "dockerd.log"
    cmd = [
        "dockerd",
        "--data-root",
        str(PRIVATE_ROOT),
        "--exec-root",
        str(PRIVATE_RUN / "exec"),
        "--pidfile",
        str(PRIVATE_RUN / "dockerd.pid"),
        "--host",
        f"unix://{PRIVATE_SOCKET}",
        "--bip",
        PRIVATE_BIP,
        # Containers reach the host only: no NAT, no forwarding, no firewall rules of ours.
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    private.started_pid = process.pid
    private._log = log
    print(f"started a private dockerd (pid {process.pid}, socket {PRIVATE_SOCKET}, log {log})", flush=True)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            private.started_pid = None
            raise DockerError(f"dockerd exited with {process.returncode}:\n    {_why_not(log)}")
        if private.reachable():
            return private
        time.sleep(0.5)
    private.stop()
    raise DockerError(f"dockerd did not answer within {wait_seconds:.0f} s:\n    {_why_not(log)}")
