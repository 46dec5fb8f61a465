"""A local multi-node Ray cluster for the tests: ``ray start --head`` and ``ray start
--address`` on this machine, every node on loopback, each in a session of its own so that
one node (and only it) can be killed, and the whole cluster stopped, without ``ray stop``
(which would stop every Ray on the machine)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.drivers import reap_session, session_pids

# `ray start` with this interpreter (and so this checkout's sweeper in every worker).
_RAY = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]
_NODES = (
    "import json, ray; ray.init(address={address!r}, _node_ip_address='127.0.0.1', "
    "log_to_driver=False, logging_level='ERROR'); "
    "print(json.dumps([[n['NodeID'], 'node:__internal_head__' in n['Resources']] "
    "for n in ray.nodes() if n['Alive']]))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """One ``ray start --block`` process (the session id of the node's processes)."""

    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def sid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return bool(session_pids(self.sid))

    def kill(self) -> None:
        """SIGKILL every process of this node: its raylet, object store and workers."""
        reap_session(self.sid)
        self.proc.wait()


@dataclass
class LocalCluster:
    """A head and workers on 127.0.0.1, under a short private temp dir (socket paths)."""

    temp_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_head(self, num_cpus: int) -> Node:
        return self._start(
            "head",
            ["--head", f"--port={self.port}", "--include-dashboard=false"],
            num_cpus,
        )

    def add_worker(self, num_cpus: int) -> Node:
        return self._start(f"worker{len(self.nodes)}", [f"--address={self.address}"], num_cpus)

    def _start(self, name: str, args: list[str], num_cpus: int) -> Node:
        log = self.temp_dir.parent / f"ray-{name}.log"
        cmd = [
            *_RAY,
            "start",
            *args,
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.temp_dir}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            "--block",
        ]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        node = Node(name, proc, log)
        self.nodes.append(node)
        self._wait_for(len(self.nodes), node)
        return node

    def _wait_for(self, count: int, node: Node, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"ray start {node.name} exited: {node.log.read_text()[-2000:]}")
            try:
                if len(self.node_ids()) >= count:
                    return
            except (subprocess.SubprocessError, ValueError):
                pass
            time.sleep(1.0)
        raise RuntimeError(f"the cluster did not reach {count} nodes in {timeout:.0f}s")

    def node_ids(self) -> list[tuple[str, bool]]:
        """The live nodes as Ray lists them: (node id, is the head), by one short driver."""
        out = subprocess.run(
            [sys.executable, "-c", _NODES.format(address=self.address)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=True,
        )
        return [tuple(n) for n in json.loads(out.stdout.strip().splitlines()[-1])]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()
