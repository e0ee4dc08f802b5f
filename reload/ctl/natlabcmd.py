"""``reloadctl lab --nat``: the NAT lab (:mod:`reload.natlab`) for people.

It builds network namespaces with a public segment and two NATs (``a``
endpoint-independent, ``b`` a new random port per destination), starts a
public bootstrap peer, a public TURN peer and N peers behind the NATs
(RFC 6940 section 6.5.1: their links use ICE), prints every peer with
each of its links' ICE pair type (host, srflx, relay, or no-ice), and
keeps it all running until Ctrl-C, when it stops the peers and deletes
the namespaces.  Root only: without root it says so and does nothing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from reload.ctl.main import linkPairTypes
from reload.lab import Lab
from reload.natlab import NatLab, NatLabPeer, NatPeerLab, natLabAvailable, startNatOverlay

__all__ = ["cmdNatLab"]


def cmdNatLab(args: argparse.Namespace) -> int:
    why = natLabAvailable()
    if why is not None:
        print(f"reloadctl lab --nat: {why}; run it as root (sudo)", file=sys.stderr)
        return 1
    directory = Path(args.dir)
    if (directory / "lab.json").exists() and Lab.load(directory).peers:
        print(
            f"reloadctl: a lab is running in {directory}; `reloadctl lab stop` first",
            file=sys.stderr,
        )
        return 1
    net = NatLab()
    print(f"Building the NAT lab (namespaces {net.prefix}*) ...", file=sys.stderr)
    net.build()
    lab = NatPeerLab(directory, net, extraArgs=["--user", args.user or "lab@example.org"])
    try:
        startNatOverlay(lab, args.peers, args.timeout)
        lab.waitConverged(args.timeout)
        time.sleep(2)  # the last links' ICE sessions
        _table(lab)
        print("\nPress Ctrl-C to stop the NAT lab.", file=sys.stderr)
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
        while not stopping and any(lab.alive(p) for p in lab.peers):
            time.sleep(0.5)
        return 0
    except (TimeoutError, RuntimeError) as exc:
        print(f"\nreloadctl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        print("\nStopping the NAT lab ...", file=sys.stderr)
        lab.stop()
        net.teardown()


def _table(lab: NatPeerLab) -> None:
    names = {"public": "public", "a": "NAT a (friendly)", "b": "NAT b (hostile)"}
    peers = [p for p in lab.peers if isinstance(p, NatLabPeer)]
    statuses = {p.index: lab.status(p) for p in peers}
    ids = {p.index: statuses[p.index].get("nodeId", "?") for p in peers}
    byId = {nodeId: index for index, nodeId in ids.items()}
    for peer in peers:
        status = statuses[peer.index]
        nat = status.get("nat") or {}
        print(
            f"peer {peer.index}  {names[peer.side]:17} {peer.address:22} "
            f"{ids[peer.index][:16]}  reflexive {nat.get('reflexive') or '-'}  "
            f"relayed {nat.get('relayed') or '-'}"
        )
        for nodeId, kind in sorted(linkPairTypes(status).items()):
            other = byId.get(nodeId)
            print(f"    link to peer {other if other is not None else '?'}: {kind}")
        print(f"    admin: {peer.admin} (namespace {peer.namespace})")
