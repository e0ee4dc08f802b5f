"""A NAT lab: network namespaces with a public segment and two private
segments behind NATs, for ICE (RFC 6940 section 6.5.1.3) tried for real.

Built with ``ip netns``, veth pairs and iptables (root only), and only with
addresses that exist inside its namespaces: the "public" segment is a
bridge in the 198.18.0.0/15 benchmarking range (RFC 2544), the private ones
are 10.x networks.  Nothing is routed to or from the host's own namespace::

    pub   198.18.0.1 .. 198.18.0.9  (public peers; bridge br0)
      |-- nata 198.18.0.11  MASQUERADE: endpoint-independent mapping
      |     `-- priva 10.1.0.0/24  (host 10.1.0.2 ..)
      `-- natb 198.18.0.12  MASQUERADE --random-fully: a new random port for
            `-- privb 10.2.0.0/24   every destination (address-and-port-
                                    dependent mapping: hole punching fails)

Linux connection tracking filters inbound UDP by address and port on both
NATs: a packet from outside passes only as the reply to something sent to
that very address and port.  With the friendly NAT the port a host uses is
kept, so the server-reflexive address another peer told it works for every
destination and ICE checks from both sides meet; behind the hostile NAT
each destination sees another port, so two peers behind the NATs cannot
reach each other directly and need a relay.

Every name carries a per-lab prefix (``rl<pid>x<n>``), so labs of
parallel test runs do not meet; :meth:`NatLab.teardown` kills the processes
left in the lab's namespaces and deletes the namespaces (which takes their
interfaces and iptables rules with them), and is safe to call after a
failed or partial :meth:`NatLab.build`.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reload.lab import Lab, LabPeer

__all__ = ["NatLab", "NatLabError", "NatLabPeer", "NatPeerLab", "Segment", "natLabAvailable"]

#: The public segment (RFC 2544 benchmarking range).
PUBLIC_NETWORK = "198.18.0"
#: Where NAT ``a`` and NAT ``b`` sit on the public segment.
NAT_PUBLIC = {"a": f"{PUBLIC_NETWORK}.11", "b": f"{PUBLIC_NETWORK}.12"}
#: The private networks behind them.
PRIVATE_NETWORK = {"a": "10.1.0", "b": "10.2.0"}

_counter = itertools.count(1)


class NatLabError(Exception):
    """The NAT lab cannot be built here (not root, tools missing, or a
    command failed); the message says which."""


def natLabAvailable() -> str | None:
    """Why a NAT lab cannot be built on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "the NAT lab needs root (network namespaces and iptables)"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"the NAT lab needs {tool} (Debian package {package})"
    return None


@dataclass(frozen=True)
class Segment:
    """Where a host of the lab lives: its namespace and its address."""

    namespace: str
    address: str
    #: "public", "a" (friendly NAT) or "b" (hostile NAT).
    side: str


class NatLab:
    """The namespaces of one NAT lab; :meth:`build` makes them."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"rl{os.getpid()}x{next(_counter)}"
        self.public = f"{self.prefix}pub"
        self.nat = {side: f"{self.prefix}nat{side}" for side in ("a", "b")}
        self.private = {side: f"{self.prefix}priv{side}" for side in ("a", "b")}
        self._next = {"public": 1, "a": 2, "b": 2}
        self.built = False

    @property
    def namespaces(self) -> list[str]:
        return [self.public, *self.nat.values(), *self.private.values()]

    # -- building ---------------------------------------------------------------

    def _ip(self, *args: str) -> None:
        self._run(["ip", *args])

    def _run(self, argv: Sequence[str]) -> None:
        done = subprocess.run(list(argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise NatLabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")

    def _exec(self, namespace: str, *argv: str) -> None:
        self._run(["ip", "netns", "exec", namespace, *argv])

    def build(self) -> NatLab:
        """Make the namespaces, links, addresses, routes and NAT rules; on
        any failure everything made so far is removed again."""
        why = natLabAvailable()
        if why is not None:
            raise NatLabError(why)
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        self.built = True
        return self

    def _build(self) -> None:
        for namespace in self.namespaces:
            self._ip("netns", "add", namespace)
            self._ip("-n", namespace, "link", "set", "lo", "up")
        pub = self.public
        self._ip("-n", pub, "link", "add", "br0", "type", "bridge")
        self._ip("-n", pub, "link", "set", "br0", "up")
        for side in ("a", "b"):
            nat, private = self.nat[side], self.private[side]
            net = PRIVATE_NETWORK[side]
            # NAT <-> public bridge.
            self._ip("-n", nat, "link", "add", "wan", "type", "veth", "peer", "name",
                     f"to{side}", "netns", pub)  # fmt: skip
            self._ip("-n", pub, "link", "set", f"to{side}", "master", "br0", "up")
            self._ip("-n", nat, "addr", "add", f"{NAT_PUBLIC[side]}/24", "dev", "wan")
            self._ip("-n", nat, "link", "set", "wan", "up")
            # NAT <-> private segment.
            self._ip("-n", nat, "link", "add", "lan", "type", "veth", "peer", "name",
                     "eth0", "netns", private)  # fmt: skip
            self._ip("-n", nat, "addr", "add", f"{net}.1/24", "dev", "lan")
            self._ip("-n", nat, "link", "set", "lan", "up")
            self._ip("-n", private, "link", "set", "eth0", "up")
            # On-link: the segment's addresses come later (:meth:`host`).
            self._ip("-n", private, "route", "add", f"{net}.0/24", "dev", "eth0")
            self._ip("-n", private, "route", "add", "default", "via", f"{net}.1")
            self._exec(nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            masquerade = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan",
                          "-j", "MASQUERADE"]  # fmt: skip
            if side == "b":
                # A fresh random source port for every new connection, that
                # is every new destination address and port.
                masquerade.append("--random-fully")
            self._exec(nat, *masquerade)
            # Nothing from outside reaches the private side unless it
            # answers something sent from inside (connection tracking).
            self._exec(nat, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack",
                       "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")  # fmt: skip
            self._exec(nat, "iptables", "-A", "FORWARD", "-i", "wan", "-j", "DROP")
        # The bridge's own address: the first public host.
        self._ip("-n", pub, "addr", "add", f"{PUBLIC_NETWORK}.1/24", "dev", "br0")

    def nextHost(self, side: str) -> str:
        """The address :meth:`host` gives next on ``side`` (to configure a
        server before its peer starts)."""
        number = self._next[side]
        if side == "public":
            return f"{PUBLIC_NETWORK}.{number}"
        return f"{PRIVATE_NETWORK[side]}.{number}"

    def host(self, side: str) -> Segment:
        """A new host address on ``side`` ("public", "a" or "b"): public
        hosts share the public namespace (one address each on br0),
        private ones their segment's namespace."""
        number = self._next[side]
        self._next[side] = number + 1
        if side == "public":
            address = f"{PUBLIC_NETWORK}.{number}"
            if number > 1:
                self._ip("-n", self.public, "addr", "add", f"{address}/24", "dev", "br0")
            return Segment(self.public, address, side)
        net = PRIVATE_NETWORK[side]
        address = f"{net}.{number}"
        self._ip("-n", self.private[side], "addr", "add", f"{address}/24", "dev", "eth0")
        return Segment(self.private[side], address, side)

    # -- running things inside ---------------------------------------------------

    def command(self, namespace: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``namespace``."""
        return ["ip", "netns", "exec", namespace, *argv]

    def popen(
        self,
        namespace: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        **kwargs: object,
    ) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = subprocess.Popen(
            self.command(namespace, argv),
            env=dict(env) if env is not None else None,
            **kwargs,  # type: ignore[call-overload]
        )
        return process

    # -- teardown ---------------------------------------------------------------

    def teardown(self) -> None:
        """Kill what still runs in the lab's namespaces and delete them."""
        existing = set(
            subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        )
        for namespace in self.namespaces:
            if namespace not in existing:
                continue
            pids = subprocess.run(
                ["ip", "netns", "pids", namespace], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self.built = False

    def __enter__(self) -> NatLab:
        return self.build()

    def __exit__(self, *exc: object) -> None:
        self.teardown()


@dataclass
class NatLabPeer(LabPeer):
    """A peer of a :class:`NatPeerLab`: in a namespace, on an address of
    the lab, its admin API on a Unix socket in its data directory
    (filesystem paths cross network namespaces; addresses do not)."""

    namespace: str = ""
    host: str = ""
    side: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def adminSocket(self) -> Path:
        return Path(self.dataDir) / "admin.sock"

    @property
    def admin(self) -> str:
        return f"unix:{self.adminSocket}"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("127.0.0.1", timeout=timeout)
        self.socketPath = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socketPath)
        self.sock = sock


class NatPeerLab(Lab):
    """``twistd reload`` processes placed in a :class:`NatLab`: public peers
    on the public segment, others behind NAT ``a`` (friendly) or ``b``
    (hostile).  The first peer started is the bootstrap peer of the rest."""

    def __init__(
        self,
        directory: Path,
        net: NatLab,
        extraArgs: Sequence[str] = (),
        environment: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            directory,
            basePort=16084,
            adminBasePort=None,
            extraArgs=extraArgs,
            environment=environment,
        )
        self.net = net

    def startPeerOn(
        self, side: str, bootstrap: LabPeer | None = None, extraArgs: Sequence[str] = ()
    ) -> NatLabPeer:
        self.create()
        where = self.net.host(side)
        index = self._nextIndex()
        dataDir = self.directory / f"peer-{index}"
        dataDir.mkdir(parents=True)
        peer = NatLabPeer(
            index, 16083 + index, 0, str(dataDir), None, where.namespace, where.address, side
        )
        through = bootstrap if bootstrap is not None else (self.peers[0] if self.peers else None)
        self._launch(peer, through, [*self.extraArgs, *extraArgs])
        return peer

    def _launch(self, peer: LabPeer, through: LabPeer | None, extraArgs: Sequence[str]) -> None:
        assert isinstance(peer, NatLabPeer)
        dataDir = Path(peer.dataDir)
        args = [
            *self._twistd(), "-n", "--pidfile=", f"--logfile={dataDir / 'twistd.log'}", "reload",
            "--config", str(self.configPath), "--data-dir", str(dataDir),
            "--listen", f"tcp:{peer.port}:interface={peer.host}",
            "--admin", f"unix:{peer.adminSocket}",
            *extraArgs,
        ]  # fmt: skip
        if through is not None:
            args += ["--bootstrap", through.address]
        self._spawn(peer, self.net.command(peer.namespace, args), dataDir)

    def adminGet(self, peer: LabPeer, path: str, timeout: float = 5.0) -> Any:
        """GET ``path`` of a peer's admin API; the decoded JSON."""
        assert isinstance(peer, NatLabPeer)
        return self.adminCall(peer, "GET", path, None, timeout)

    def adminCall(
        self, peer: NatLabPeer, method: str, path: str, body: bytes | None, timeout: float = 10.0
    ) -> Any:
        connection = _UnixHTTPConnection(str(peer.adminSocket), timeout)
        try:
            headers = {"Host": "127.0.0.1", **peer.adminHeaders()}
            if body is not None:
                headers["Content-Type"] = "application/json"
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            if response.status >= 400:
                raise OSError(f"{method} {path}: {response.status} {data[:200]!r}")
            return json.loads(data)
        finally:
            connection.close()

    def status(self, peer: LabPeer, timeout: float = 2.0) -> dict[str, Any]:
        try:
            status: dict[str, Any] = self.adminGet(peer, "/status", timeout)
            return status
        except (OSError, ValueError, http.client.HTTPException):
            return {"state": "unreachable"}


#: The long-term credential the NAT overlay's TURN peer accepts.
LAB_TURN_USER = "lab"
LAB_TURN_PASSWORD = "lab-relay"
LAB_TURN_PORT = 3478


def startNatOverlay(
    lab: NatPeerLab, peers: int, timeout: float = 90.0
) -> dict[str, list[NatLabPeer]]:
    """An overlay in the NAT lab, as RFC 6940 section 6.5.1 expects one:
    a public bootstrap peer, a public peer running the TURN usage's
    built-in server (section 9), then ``peers`` peers alternately behind
    the friendly NAT ``a`` and the hostile NAT ``b``, each given that TURN
    server for its relayed candidate; returns them by side once all joined
    (TimeoutError or RuntimeError otherwise, from :meth:`Lab.waitFor`)."""
    users = lab.directory / "turn-users"
    lab.create()
    users.write_text(f"{LAB_TURN_USER}:{LAB_TURN_PASSWORD}\n")
    boot = lab.startPeerOn("public")
    turnHost = lab.net.nextHost("public")
    relay = lab.startPeerOn(
        "public",
        extraArgs=[
            "--usage", "TURN",
            "--usage-option", f"TURN:host={turnHost}",
            "--usage-option", f"TURN:udp-port={LAB_TURN_PORT}",
            "--usage-option", "TURN:tcp-port=off",
            "--usage-option", f"TURN:users={users}",
        ],
    )  # fmt: skip
    lab.waitFor(lambda s: s.get("state") == "joined", [boot, relay], timeout)
    turnArgs = [
        "--turn-server", f"{turnHost}:{LAB_TURN_PORT}",
        "--turn-user", LAB_TURN_USER, "--turn-password", LAB_TURN_PASSWORD,
    ]  # fmt: skip
    sides: dict[str, list[NatLabPeer]] = {"public": [boot, relay], "a": [], "b": []}
    for n in range(peers):
        side = "ab"[n % 2]
        sides[side].append(lab.startPeerOn(side, bootstrap=boot, extraArgs=turnArgs))
    everyone = [p for group in sides.values() for p in group]
    lab.waitFor(lambda s: s.get("state") == "joined", everyone, timeout)
    return sides
