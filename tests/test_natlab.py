"""The NAT lab itself (reload.natlab), checked with plain UDP sockets: the
friendly NAT keeps one mapping for every destination, the hostile one makes
a new one per destination, and neither lets in what nobody inside asked for."""

from __future__ import annotations

import subprocess
import sys
import time

from reload.natlab import NatLab
from tests.natlab import pythonIn, requireNatLab

#: Answers every datagram with the address it came from, on several ports.
REFLECTOR = """
import socket, selectors, sys
sel = selectors.DefaultSelector()
for port in sys.argv[2:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(port)))
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        data, addr = key.fileobj.recvfrom(2048)
        key.fileobj.sendto(f"{addr[0]}:{addr[1]}".encode(), addr)
"""

#: From one socket, asks the reflector at HOST on each PORT how it sees us.
ASK = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
s.settimeout(2)
seen = []
for port in sys.argv[2:]:
    s.sendto(b"who am i", (sys.argv[1], int(port)))
    try:
        seen.append(s.recvfrom(2048)[0].decode())
    except socket.timeout:
        seen.append(None)
print(json.dumps(seen))
"""

#: Waits for one datagram on PORT for two seconds; the sender or null.
LISTEN = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
try:
    print(json.dumps(s.recvfrom(2048)[1][0]))
except socket.timeout:
    print("null")
"""

PORTS = ("5001", "5002", "5003")


def startReflector(lab: NatLab, host: str) -> subprocess.Popen[bytes]:
    process = lab.popen(
        lab.public,
        [sys.executable, "-c", REFLECTOR, host, *PORTS],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    return process


def test_friendlyNatKeepsOneMappingForEveryDestination(natLab: NatLab) -> None:
    public = natLab.host("public")
    host = natLab.host("a")
    reflector = startReflector(natLab, public.address)
    try:
        seen = pythonIn(natLab, host.namespace, ASK, public.address, *PORTS)
    finally:
        reflector.kill()
        reflector.wait()
    assert None not in seen
    assert {s.split(":")[0] for s in seen} == {"198.18.0.11"}
    # Endpoint-independent: the same public port towards every destination.
    assert len(set(seen)) == 1, seen


def test_hostileNatMapsEveryDestinationAnew(natLab: NatLab) -> None:
    public = natLab.host("public")
    host = natLab.host("b")
    reflector = startReflector(natLab, public.address)
    try:
        seen = pythonIn(natLab, host.namespace, ASK, public.address, *PORTS)
    finally:
        reflector.kill()
        reflector.wait()
    assert None not in seen
    assert {s.split(":")[0] for s in seen} == {"198.18.0.12"}
    # Address-and-port-dependent: a new port per destination (three random
    # ports all equal by chance: about once in 4e9 runs).
    assert len(set(seen)) > 1, seen


def test_nothingUnsolicitedGetsIn(natLab: NatLab) -> None:
    """A public host can neither route to a private address nor get
    through a NAT's public address to a host that sent it nothing."""
    public = natLab.host("public")
    behind = natLab.host("a")
    listener = natLab.popen(
        behind.namespace, [sys.executable, "-c", LISTEN, "40000", "3"], stdout=subprocess.PIPE
    )
    time.sleep(0.5)
    send = (
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        "[s.sendto(b'x',(h,40000)) for h in ('198.18.0.11',)];"
        "print('[]')"
    )
    pythonIn(natLab, public.namespace, send)
    unreachable = subprocess.run(
        natLab.command(public.namespace, ["ip", "route", "get", behind.address]),
        capture_output=True,
        text=True,
    )
    out, _ = listener.communicate(timeout=10)
    assert out.strip() == b"null"
    assert unreachable.returncode != 0  # no route to 10.1.0.0/24


def test_teardownRemovesEverything() -> None:
    requireNatLab()
    lab = NatLab()
    lab.build()
    host = lab.host("a")
    sleeper = lab.popen(host.namespace, ["sleep", "60"])
    lab.teardown()
    assert sleeper.wait(timeout=5) != 0
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in lab.namespaces if n in names.split()]


def test_aFailedBuildLeavesNothingBehind() -> None:
    requireNatLab()
    lab = NatLab()
    # Occupy one of its names so that build fails half way.
    subprocess.run(["ip", "netns", "add", lab.private["b"]], check=True)
    try:
        try:
            lab.build()
        except Exception as exc:
            assert "netns add" in str(exc)
        else:
            raise AssertionError("build should have failed")
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert [n for n in lab.namespaces if n in names.split()] == []
    finally:
        subprocess.run(["ip", "netns", "del", lab.private["b"]], capture_output=True)
