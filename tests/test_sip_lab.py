"""The SIP usage (RFC 7904) between real peers, with phones nobody here
wrote: sipp (Debian ``sip-tester``) registers at one peer's front end and
calls through another's.  sipp's exit status is each verdict.

Twelve peers: ten each with a user, and two with one user between them
(a forked call), each peer with a user (``--user NAME@example.com``: RFC 7904 binds
the AoR to the certificate's user name) and a front end on its own port.
A callee sipp registers at its peer (REGISTER, 200), a UAS sipp answers
there, a UAC sipp at another peer calls the AoR: INVITE, 100, 180, 200,
ACK and BYE along the Record-Route set, over UDP and over TCP; the SIP
between the two peers rides an AppAttach connection (section 5.1).  Then
AoR -> AoR forwarding, a GRUU, a forwarding loop (482), an unknown AoR
(404), someone else's AoR (403), Expires: 0, a fuzzer on the front end's
ports, and a callee whose peer was killed (480, no hang).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reload.api.data import Destination
from reload.lab import Lab, LabPeer, freeListenPort
from usages.sipusage.record import encodeGruu

from .conftest import commandPath, requireTool, sourceEnv
from .replication_support import eventually

SCENARIOS = Path(__file__).parent / "sip"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
DOMAIN = "example.com"
#: The peer whose front end also listens for TLS (a self-signed certificate).
TLS_USER = "frank"
#: The user of two peers (two devices, two certificates with one user
#: name): a call to it forks.
FORKED_USER = "kim"
#: The peer whose phones must authenticate (SIP:passwords), and the password.
AUTH_USER, PASSWORD = "grace", "s3cret"


class SipLab:
    def __init__(self, lab: Lab, ports: dict[str, int], directory: Path) -> None:
        self.lab = lab
        self.ports = ports
        self.directory = directory
        self.peers = dict(zip(USERS, lab.peers[: len(USERS)], strict=True))
        #: Two more peers with one user: two devices of FORKED_USER.
        self.devices = lab.peers[len(USERS) :]

    def peer(self, user: str) -> LabPeer:
        return self.peers[user]


def reloadctl(admin: str, *args: str) -> tuple[int, Any, str]:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--admin", admin, "--json"],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    data = json.loads(result.stdout) if result.returncode == 0 else None
    return result.returncode, data, result.stderr


def sippArgs(
    directory: Path, name: str, scenario: Path, transport: str, keys: dict[str, str]
) -> list[str]:
    args = [
        requireTool("sipp", "sip-tester"), "-sf", str(scenario), "-m", "1",
        "-i", "127.0.0.1", "-t", "t1" if transport == "tcp" else "u1",
        "-timeout", "30", "-timeout_error", "-nostdin",
        "-trace_err", "-error_file", str(directory / f"{name}.err"),
        "-trace_msg", "-message_file", str(directory / f"{name}.msg"),
    ]  # fmt: skip
    for key, value in keys.items():
        args += ["-key", key, value]
    return args


def runSipp(
    directory: Path,
    name: str,
    scenario: Path,
    target: int,
    transport: str,
    *extra: str,
    **keys: str,
) -> tuple[int, str]:
    """sipp as a client of the front end on port ``target`` (``extra``
    options added); its exit status and its error log."""
    args = [*sippArgs(directory, name, scenario, transport, keys), *extra]
    args += ["-p", str(freeListenPort()), f"127.0.0.1:{target}"]
    result = subprocess.run(args, capture_output=True, timeout=60)
    errors = directory / f"{name}.err"
    return result.returncode, errors.read_text() if errors.exists() else ""


def scenario(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.xml"
    path.write_text(text)
    return path


def registerScenario(directory: Path, status: int) -> Path:
    text = (SCENARIOS / "register.xml").read_text()
    return scenario(directory, f"register-{status}", text.replace('"200"', f'"{status}"'))


def inviteScenario(directory: Path, status: int) -> Path:
    """INVITE, optional provisionals, the final ``status``, ACK."""
    return scenario(
        directory,
        f"invite-{status}",
        f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="invite-{status}">
  <send retrans="500"><![CDATA[
      INVITE sip:[callee] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[caller]>;tag=[pid]c[call_number]
      To: <sip:[callee]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: [hops]
      Content-Length: 0

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="{status}"/>
  <send><![CDATA[
      ACK sip:[callee] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[caller]>;tag=[pid]c[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
</scenario>
""",
    )


@pytest.fixture(scope="module")
def sipLab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipLab]:
    requireTool("sipp", "sip-tester")
    directory = tmp_path_factory.mktemp("lab-sip")
    lab = Lab(directory, basePort=None, adminBasePort=None, environment=sourceEnv())
    lab.create()
    ports: dict[str, int] = {}
    try:
        for user in USERS:
            ports[user] = freeListenPort()
            lab.extraArgs = [
                "--usage", "SIP", "--user", f"{user}@{DOMAIN}",
                "--usage-option", f"SIP:listen=127.0.0.1:{ports[user]}",
            ]  # fmt: skip
            if user == AUTH_USER:
                passwords = directory / "passwords"
                passwords.write_text(f"# AOR:PASSWORD\n{AUTH_USER}@{DOMAIN}:{PASSWORD}\n")
                lab.extraArgs += ["--usage-option", f"SIP:passwords={passwords}"]
            if user == TLS_USER:
                ports[f"{user}-tls"] = freeListenPort()
                lab.extraArgs += [
                    "--usage-option", f"SIP:tls-listen=127.0.0.1:{ports[f'{user}-tls']}"
                ]  # fmt: skip
            lab.startPeer()
            lab.waitConverged(90)
        for device in (1, 2):
            ports[f"{FORKED_USER}{device}"] = freeListenPort()
            lab.extraArgs = [
                "--usage", "SIP", "--user", f"{FORKED_USER}@{DOMAIN}",
                "--usage-option", f"SIP:listen=127.0.0.1:{ports[f'{FORKED_USER}{device}']}",
            ]  # fmt: skip
            lab.startPeer()
            lab.waitConverged(90)
        yield SipLab(lab, ports, directory)
    finally:
        lab.stop()


def register(lab: SipLab, user: str, contactPort: int, transport: str, expires: int = 300) -> None:
    contact = f"{user}@127.0.0.1:{contactPort}" + (";transport=tcp" if transport == "tcp" else "")
    code, errors = runSipp(
        lab.directory, f"register-{user}-{transport}", SCENARIOS / "register.xml",
        lab.ports[user], transport,
        aor=f"{user}@{DOMAIN}", domain=DOMAIN, contact=contact, expires=str(expires),
    )  # fmt: skip
    assert code == 0, errors


def call(
    lab: SipLab,
    caller: str,
    callee: str,
    transport: str,
    name: str,
    phone: str | None = None,
    scenarios: tuple[str, str] = ("uac.xml", "uas.xml"),
) -> None:
    """A UAS sipp registered as ``phone`` (default: the callee's user)
    answers while a UAC sipp at ``caller``'s peer calls ``callee`` (an
    AoR or a GRUU)."""
    uasPort = freeListenPort()
    register(lab, phone or callee.split("@")[0], uasPort, transport)
    uas = subprocess.Popen(
        [*sippArgs(lab.directory, f"{name}-uas", SCENARIOS / scenarios[1], transport, {}),
         "-p", str(uasPort)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        code, errors = runSipp(
            lab.directory, f"{name}-uac", SCENARIOS / scenarios[0], lab.ports[caller], transport,
            caller=f"{caller}@{DOMAIN}", callee=callee,
        )  # fmt: skip
        assert code == 0, errors
        assert uas.wait(timeout=30) == 0, (lab.directory / f"{name}-uas.err").read_text()
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_phone_calls_another_through_the_overlay(sipLab: SipLab, transport: str) -> None:
    call(sipLab, "alice", f"bob@{DOMAIN}", transport, f"call-{transport}")
    code, status, err = reloadctl(sipLab.peer("alice").admin, "status")
    assert code == 0, err
    front = next(u for u in status["usages"] if u["name"] == "SIP")["status"]["front end"]
    assert front["forwarded to peers"] >= 1
    assert front["connections"]["opened"] >= 1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_caller_cancels_a_ringing_call(sipLab: SipLab, transport: str) -> None:
    call(
        sipLab, "alice", f"bob@{DOMAIN}", transport, f"cancel-{transport}",
        scenarios=("uac-cancel.xml", "uas-cancel.xml"),
    )  # fmt: skip


def test_a_call_between_two_phones_of_one_peer_stays_there(sipLab: SipLab) -> None:
    # The callee's registration routes to the caller's own peer: no
    # AppAttach, the front end hands the call to its own phone.
    call(sipLab, "heidi", f"heidi@{DOMAIN}", "udp", "local")
    _, status, _ = reloadctl(sipLab.peer("heidi").admin, "status")
    front = next(u for u in status["usages"] if u["name"] == "SIP")["status"]["front end"]
    assert front["connections"]["opened"] == 0
    assert front["forwarded to peers"] == 0
    assert front["delivered to phones"] >= 3  # INVITE, ACK, BYE


def test_a_call_to_an_aor_on_two_peers_forks_and_the_loser_is_cancelled(
    sipLab: SipLab,
) -> None:
    d = sipLab.directory
    # Device 1 answers after a second of ringing; device 2 rings until the
    # proxy CANCELs it (RFC 3261 section 16.7 step 10) and answers 487.
    slow = (SCENARIOS / "uas.xml").read_text()
    slow = slow.replace(
        '<send retrans="500">', '<pause milliseconds="1000"/>\n  <send retrans="500">', 1
    )
    phones = []
    try:
        for device, name in ((1, slow), (2, None)):
            port = freeListenPort()
            code, errors = runSipp(
                d, f"fork-register-{device}", SCENARIOS / "register.xml",
                sipLab.ports[f"{FORKED_USER}{device}"], "udp",
                aor=f"{FORKED_USER}@{DOMAIN}", domain=DOMAIN,
                contact=f"{FORKED_USER}@127.0.0.1:{port}", expires="300",
            )  # fmt: skip
            assert code == 0, errors
            path = scenario(d, "uas-slow", name) if name else SCENARIOS / "uas-cancel.xml"
            phones.append(
                subprocess.Popen(
                    [*sippArgs(d, f"fork-uas-{device}", path, "udp", {}), "-p", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        code, found, err = reloadctl(
            sipLab.peer("alice").admin, "sip", "resolve", f"{FORKED_USER}@{DOMAIN}"
        )
        assert code == 0 and len(found["targets"]) == 2, err
        time.sleep(0.5)
        code, errors = runSipp(
            d, "fork-uac", SCENARIOS / "uac.xml", sipLab.ports["alice"], "udp",
            caller=f"alice@{DOMAIN}", callee=f"{FORKED_USER}@{DOMAIN}",
        )  # fmt: skip
        assert code == 0, errors
        for device, phone in enumerate(phones, 1):
            log = d / f"fork-uas-{device}.err"
            assert phone.wait(timeout=30) == 0, log.read_text() if log.exists() else ""
    finally:
        for phone in phones:
            if phone.poll() is None:
                phone.kill()
                phone.wait()


def test_a_second_call_reuses_the_appattach_connection(sipLab: SipLab) -> None:
    def opened() -> tuple[int, int]:
        _, status, _ = reloadctl(sipLab.peer("carol").admin, "status")
        front = next(u for u in status["usages"] if u["name"] == "SIP")["status"]["front end"]
        return front["connections"]["opened"], front["connections"]["reused"]

    call(sipLab, "carol", f"bob@{DOMAIN}", "udp", "reuse-1")
    first = opened()
    call(sipLab, "carol", f"bob@{DOMAIN}", "udp", "reuse-2")
    second = opened()
    assert second[0] == first[0] == 1
    assert second[1] > first[1]


def test_reloadctl_sip_resolve_and_forward(sipLab: SipLab) -> None:
    register(sipLab, "bob", freeListenPort(), "udp")
    admin = sipLab.peer("alice").admin
    code, found, err = reloadctl(admin, "sip", "resolve", f"sip:bob@{DOMAIN}")
    assert code == 0, err
    bobNode = sipLab.lab.status(sipLab.peer("bob"))["nodeId"]
    assert [t["nodeId"] for t in found["targets"]] == [bobNode]
    # AoR -> AoR: erin's calls go to bob, and a call to erin reaches bob's phone.
    code, forwarded, err = reloadctl(sipLab.peer("erin").admin, "sip", "forward", f"bob@{DOMAIN}")
    assert code == 0, err
    assert forwarded["uri"] == f"bob@{DOMAIN}"
    code, found, err = reloadctl(admin, "sip", "resolve", f"erin@{DOMAIN}")
    assert code == 0, err
    assert found["fetched"] == [f"erin@{DOMAIN}", f"bob@{DOMAIN}"]
    call(sipLab, "alice", f"erin@{DOMAIN}", "udp", "forwarded", phone="bob")
    human = subprocess.run(
        [commandPath("reloadctl"), "sip", "resolve", f"erin@{DOMAIN}", "--admin", admin],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert f"-> peer {bobNode} (through bob@{DOMAIN})" in human.stdout
    # A peer registers its own AoR by hand, and withdraws it.
    ivan = sipLab.peer("ivan")
    ivanNode = sipLab.lab.status(ivan)["nodeId"]
    said = subprocess.run(
        [commandPath("reloadctl"), "sip", "register", "--lifetime", "60", "--admin", ivan.admin],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith(f"ivan@{DOMAIN} registered: calls go to {ivanNode} for 60 s")
    assert f"GRUU ivan@{DOMAIN};gr=" in said.stdout
    code, found, err = reloadctl(admin, "sip", "resolve", f"ivan@{DOMAIN}")
    assert code == 0 and [t["nodeId"] for t in found["targets"]] == [ivanNode], err
    code, _, err = reloadctl(ivan.admin, "sip", "unregister")
    assert code == 0, err
    code, _, err = reloadctl(admin, "sip", "resolve", f"ivan@{DOMAIN}")
    assert code == 1 and "no registration" in err
    # Someone else's AoR: refused before the overlay is asked.
    code, _, err = reloadctl(ivan.admin, "sip", "register", f"bob@{DOMAIN}")
    assert code == 1 and "is not this peer's AoR" in err


def test_a_gruu_call_goes_straight_to_the_peer(sipLab: SipLab) -> None:
    bobNode = bytes.fromhex(sipLab.lab.status(sipLab.peer("bob"))["nodeId"])
    gruu = encodeGruu(f"bob@{DOMAIN}", (Destination.node(bobNode),))
    call(sipLab, "alice", gruu, "udp", "gruu", phone="bob")


def test_unknown_aor_loop_and_max_forwards(sipLab: SipLab) -> None:
    d = sipLab.directory
    code, errors = runSipp(
        d, "unknown", inviteScenario(d, 404), sipLab.ports["alice"], "udp",
        caller=f"alice@{DOMAIN}", callee=f"nobody@{DOMAIN}", hops="70",
    )  # fmt: skip
    assert code == 0, errors
    # carol -> dave -> carol: 482.
    for user, target in (("carol", "dave"), ("dave", "carol")):
        code, _, err = reloadctl(sipLab.peer(user).admin, "sip", "forward", f"{target}@{DOMAIN}")
        assert code == 0, err
    code, errors = runSipp(
        d, "loop", inviteScenario(d, 482), sipLab.ports["alice"], "udp",
        caller=f"alice@{DOMAIN}", callee=f"carol@{DOMAIN}", hops="70",
    )  # fmt: skip
    assert code == 0, errors
    code, errors = runSipp(
        d, "hops", inviteScenario(d, 483), sipLab.ports["alice"], "udp",
        caller=f"alice@{DOMAIN}", callee=f"bob@{DOMAIN}", hops="0",
    )  # fmt: skip
    assert code == 0, errors


def test_registering_someone_elses_aor_is_forbidden(sipLab: SipLab) -> None:
    code, errors = runSipp(
        sipLab.directory, "forbidden", registerScenario(sipLab.directory, 403),
        sipLab.ports["alice"], "udp",
        aor=f"bob@{DOMAIN}", domain=DOMAIN, contact="mallory@127.0.0.1:9", expires="300",
    )  # fmt: skip
    assert code == 0, errors


@pytest.mark.parametrize(("password", "final"), [(PASSWORD, 200), ("wrong", 401)])
def test_phones_prove_their_password_with_digest_authentication(
    sipLab: SipLab, password: str, final: int
) -> None:
    d = sipLab.directory
    text = (SCENARIOS / "register-auth.xml").read_text().replace("FINAL", str(final))
    code, errors = runSipp(
        d, f"auth-{final}", scenario(d, f"register-auth-{final}", text),
        sipLab.ports[AUTH_USER], "udp", "-au", AUTH_USER, "-ap", password,
        aor=f"{AUTH_USER}@{DOMAIN}", domain=DOMAIN, contact=f"{AUTH_USER}@127.0.0.1:9",
    )  # fmt: skip
    assert code == 0, errors
    # Without credentials a call is challenged (407); acting for someone
    # else's AoR is refused (403).
    for caller, status in ((AUTH_USER, 407), ("alice", 403)):
        code, errors = runSipp(
            d, f"auth-invite-{status}", inviteScenario(d, status), sipLab.ports[AUTH_USER],
            "udp", caller=f"{caller}@{DOMAIN}", callee=f"bob@{DOMAIN}", hops="70",
        )  # fmt: skip
        assert code == 0, errors


def test_expires_zero_removes_the_registration(sipLab: SipLab) -> None:
    admin = sipLab.peer("alice").admin
    phonePort = freeListenPort()
    register(sipLab, "erin", phonePort, "udp")
    code, found, err = reloadctl(admin, "sip", "resolve", f"erin@{DOMAIN}")
    assert code == 0 and found["targets"], err
    register(sipLab, "erin", phonePort, "udp", expires=0)
    code, _, err = reloadctl(admin, "sip", "resolve", f"erin@{DOMAIN}")
    assert code == 1 and "no registration" in err


def fuzz(port: int) -> int:
    """Hostile bytes at the front end's UDP and TCP ports; how many sent."""
    good = (
        "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKf\r\n"
        "From: <sip:f@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\n"
    )
    inputs = [
        b"\x00\xff" * 300,
        b"garbage\r\n\r\n",
        b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n",
        (good + "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),  # no Call-ID
        (good + "Call-ID: f1\r\nContent-Length: 0\r\n\r\n").encode(),  # no CSeq
        (good + "Call-ID: f2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 999\r\n\r\nshort").encode(),
        (good + "Call-ID: f3\r\nCSeq: 1 OPTIONS\r\nl: -5\r\n\r\n").encode(),
        (good + "Call-ID: f4\r\nCSeq: x OPTIONS\r\n" + "X-Pad: a\r\n" * 200 + "\r\n").encode(),
        (good + "Call-ID: f5\r\nCSeq: 1 OPTIONS\r\nX-Big: " + "a" * 70000 + "\r\n\r\n").encode(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n",
        b"REGISTER sip:example.com SIP/2.0\r\nContact: *\r\n\r\n",
    ]
    sent = 0
    for data in inputs:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            if len(data) < 65000:
                udp.sendto(data, ("127.0.0.1", port))
                sent += 1
        with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
            try:
                tcp.sendall(data)
                sent += 1
                tcp.settimeout(1)
                tcp.recv(4096)
            except OSError:
                pass
    return sent


def options(port: int) -> bytes:
    """A well-formed OPTIONS to the front end itself over UDP; the answer."""
    request = (
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKo\r\n"
        "From: <sip:f@example.com>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: o1\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(request.encode(), ("127.0.0.1", port))
        return udp.recv(65535)


def test_a_fuzzer_does_not_stop_the_front_end_serving_phones(sipLab: SipLab) -> None:
    assert options(sipLab.ports["alice"]).startswith(b"SIP/2.0 200 OK")
    assert fuzz(sipLab.ports["alice"]) >= 20
    assert fuzz(sipLab.ports["bob"]) >= 20
    call(sipLab, "alice", f"bob@{DOMAIN}", "udp", "after-fuzz-udp")
    call(sipLab, "alice", f"bob@{DOMAIN}", "tcp", "after-fuzz-tcp")
    _, status, _ = reloadctl(sipLab.peer("alice").admin, "status")
    front = next(u for u in status["usages"] if u["name"] == "SIP")["status"]["front end"]
    assert front["malformed"] >= 8
    assert options(sipLab.ports["alice"]).startswith(b"SIP/2.0 200 OK")


BARESIP_CONFIG = """poll_method epoll
sip_listen 127.0.0.1:{port}
audio_player aubridge,x
audio_alert aubridge,x
audio_source ausine,440
ausrc_srate 48000
ausrc_channels 2
auplay_srate 48000
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aubridge.so
module_app account.so
module_app menu.so
"""


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_baresip_registers_and_auto_answers_a_call_from_sipp(
    sipLab: SipLab, transport: str
) -> None:
    baresip = requireTool("baresip", "baresip")
    config = sipLab.directory / f"baresip-{transport}"
    config.mkdir()
    (config / "config").write_text(BARESIP_CONFIG.format(port=freeListenPort()))
    port = sipLab.ports[TLS_USER + ("-tls" if transport == "tls" else "")]
    (config / "accounts").write_text(
        f"<sip:{TLS_USER}@{DOMAIN};transport={transport}>;"
        f'outbound="sip:127.0.0.1:{port};transport={transport}";'
        "regint=300;answermode=auto;audio_codecs=PCMU\n"
    )
    (config / "contacts").write_text("")
    log = sipLab.directory / f"baresip-{transport}.log"
    with open(log, "wb") as out:
        phone = subprocess.Popen(
            [baresip, "-f", str(config), "-t", "40"], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        # baresip prints "frank@example.com: {0/TLS/v4} 200 OK (reload-sip)".
        said = f"/{transport.upper()}/v4}} 200 OK (reload-sip)"
        registered = eventually(lambda: said in log.read_text(), 15)
        assert registered, log.read_text()
        code, errors = runSipp(
            sipLab.directory, f"baresip-{transport}-uac", SCENARIOS / "uac-sdp.xml",
            sipLab.ports["alice"], "udp", caller=f"alice@{DOMAIN}", callee=f"{TLS_USER}@{DOMAIN}",
        )  # fmt: skip
        assert code == 0, errors
        assert "Call established: sip:alice@example.com" in log.read_text()
    finally:
        phone.terminate()
        phone.wait(timeout=10)


def test_a_peer_that_leaves_removes_its_phones_registrations(sipLab: SipLab) -> None:
    register(sipLab, "judy", freeListenPort(), "udp")
    admin = sipLab.peer("alice").admin
    code, found, err = reloadctl(admin, "sip", "resolve", f"judy@{DOMAIN}")
    assert code == 0 and found["targets"], err
    sipLab.lab.stopPeer(sipLab.peer("judy"))  # SIGTERM: the peer leaves
    code, _, err = reloadctl(admin, "sip", "resolve", f"judy@{DOMAIN}")
    assert code == 1 and "no registration" in err


def test_a_callee_whose_peer_was_killed_gets_480_without_a_hang(sipLab: SipLab) -> None:
    register(sipLab, "dave", freeListenPort(), "udp")
    dave = sipLab.peer("dave")
    sipLab.lab.sendSignal(dave, signal.SIGKILL)
    eventually(lambda: not sipLab.lab.alive(dave), 10)
    started = time.monotonic()
    d = sipLab.directory
    code, errors = runSipp(
        d, "killed", inviteScenario(d, 480), sipLab.ports["alice"], "udp",
        caller=f"alice@{DOMAIN}", callee=f"dave@{DOMAIN}", hops="70",
    )  # fmt: skip
    assert code == 0, errors
    assert time.monotonic() - started < 25
