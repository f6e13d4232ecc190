"""A real two-node Ray cluster on the test machine: a head and a worker node, each a
``ray start --block`` process with its own temporary folder, ports and resources.

Only the processes started here are ever stopped (by process id, never ``ray
stop``, which stops every Ray on the machine).  Memory is kept modest: one CPU
and an 80 MB object store per node.  The worker node can be started inside its
own mount namespace with a folder hidden from it (``unshare``, as root), to
give it a different view of the files than the driver's, as a separate machine
would have.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_hide_folders() -> bool:
    """Whether a node can be started with a private view of a folder (root and a working unshare)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return r.returncode == 0


class RayNode:
    def __init__(self, args: List[str], *, hide: Optional[Path] = None) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="lkr-", dir="/tmp"))  # short: Ray's socket paths have a limit
        self.log = self.temp / "start.log"
        ports = ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port())]
        cmd = [str(RAY), "start", *args, *ports, "--node-ip-address", "127.0.0.1", "--num-cpus", "1"]
        cmd += ["--object-store-memory", str(80 * 1024 * 1024), "--temp-dir", str(self.temp)]
        cmd += ["--disable-usage-stats", "--block"]
        if hide is not None:  # an empty tmpfs over `hide`, seen by this node's processes only
            inner = f"mount -t tmpfs tmpfs {hide} && exec " + " ".join(_quote(c) for c in cmd)
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner]
        # No token authentication on this throwaway cluster: Ray turns it on when ~/.ray/auth_token exists
        # (a local ray.init writes one), which would make these nodes depend on that file.
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self._wait_started()

    def _wait_started(self, timeout_s: float = 180.0) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            text = self.log.read_text(errors="replace")
            if "Ray runtime started" in text:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.25)
        self.kill()
        raise RuntimeError(f"ray start did not come up:\n{self.log.read_text(errors='replace')[-3000:]}")

    def processes(self) -> List[int]:
        """This node's processes: the `ray start` and every descendant (workers start their own groups)."""
        children: Dict[int, List[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(d.name))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def kill(self) -> None:
        """SIGKILL this node's processes, as a machine that dies would."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


class RayTestCluster:
    """``head`` and ``worker`` nodes of one CPU each; the worker has the custom resource ``node_b``."""

    def __init__(self, *, hide_from_worker: Optional[Path] = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        head = ["--head", "--port", str(self.port), "--include-dashboard", "false"]
        head += ["--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port())]
        self.head = RayNode(head)
        self.worker: Optional[RayNode] = None
        try:
            self.worker = RayNode(["--address", self.address, "--resources", '{"node_b": 1}'], hide=hide_from_worker)
            self.node_ids = self._node_ids()
        except BaseException:
            self.stop()
            raise

    def _node_ids(self) -> Dict[str, str]:
        """{"head": node id, "node_b": node id}, asked of the cluster in a separate process."""
        code = (
            "import json, ray; ray.init(address=%r, logging_level='error', log_to_driver=False); "
            "print(json.dumps({('node_b' if 'node_b' in n['Resources'] else 'head'): n['NodeID'] "
            "for n in ray.nodes() if n['Alive']}))" % self.address
        )
        for _ in range(40):  # the worker node registers with the head a moment after it starts
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
            ids = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
            if len(ids) == 2:
                return ids  # type: ignore[no-any-return]
            time.sleep(0.5)
        raise RuntimeError(f"the cluster did not show two nodes: {out.stdout} {out.stderr[-2000:]}")

    def stop(self) -> None:
        for node in (self.worker, self.head):
            if node is not None:
                node.kill()
                shutil.rmtree(node.temp, ignore_errors=True)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
