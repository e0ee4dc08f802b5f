"""A live ReDiR registration captured and decoded by Wireshark (issue 18).

Three real ``twistd reload`` peers run ``--usage REDIR``; their links are
captured (:class:`reload.capture.LabCapture`, as ``reloadctl lab --capture``
does, secrets embedded).  One peer provides ``voice-mail``: it is restarted
with ``REDIR:provide=voice-mail``, keeping its Node-ID, and is chosen so that
another peer is responsible for the root of the ``voice-mail`` tree.  Its
registration walk (RFC 7374 section 4.3) ends at the root whatever the ring
looks like -- a lone provider is the lowest and highest of every interval
-- so its wildcard Fetch of the root and its Store there cross a link in
every run, not only in most.

Wireshark's Kind table is told that Kind-ID 0x104 is REDIR, a DICTIONARY.
Its dissector has REDIR as the decimal Kind-ID 104 built in; RFC 7374
section 10.3 registers 0x104 (260), and DESIGN.md says the RFC wins: the
test configures the dissector instead of bending the code.  The table
takes decimal ids only (``"0x104"`` is refused as "Invalid value")::

    -o 'uat:reload_kindids:"260","REDIR","DICTIONARY"'

The record: Wireshark 4.0 decodes a RedirServiceProvider only for its
built-in Kind-ID 104 and only in the draft layout (``uint16 length``,
``NodeId serviceProvider``, ``opaque namespace<0..2^16-1>``, ``uint16
level``, ``uint16 node``).  RFC 7374 section 4.1 has ``uint8 type``, a
``Destination destination_list<0..2^16-1>`` instead of the NodeId, the same
``namespace``, ``level`` and ``node``, then ``uint16 length`` and the
extension.  The layouts share namespace, level and node, at other offsets.
For Kind-ID 260 Wireshark shows the value as opaque bytes and applies no
draft parser: the test checks those bytes are exactly the RFC record
:mod:`usages.redir` encodes for the provider at tree node (0, 0), and that
no ``reload.redirserviceprovider`` field appears.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reload.capture import LabCapture, findTools, readOptions
from reload.lab import Lab, LabPeer
from reload.plugins import loadUsages
from reload.usageruntime import usageKindConfigs
from usages.redir import REDIR_KIND_ID, RedirServiceProvider, resourceName

from .conftest import commandPath, requireTool, sourceEnv
from .wire.capture import tsharkFields

PEERS = 3
NAMESPACE = b"voice-mail"
#: Wireshark's Kind-ID table (UAT ``reload_kindids``: id, name, data model):
#: REDIR at the Kind-ID RFC 7374 registers, in decimal.
KIND_TABLE = ["-o", f'uat:reload_kindids:"{REDIR_KIND_ID}","REDIR","DICTIONARY"']
STORE_REQ, FETCH_REQ = 7, 9


@dataclass(frozen=True)
class CapturedRegistration:
    """What the lab did and where its capture is."""

    capture: Path
    #: tshark options that decrypt the links and decode them as RELOAD.
    options: list[str]
    #: The provider's Node-ID and the root tree node's Resource-ID (hex).
    provider: str
    root: str


@dataclass(frozen=True)
class DecodedEntry:
    """One DictionaryEntry of a REDIR StoredData in a StoreReq."""

    resource: str
    replicaNumber: int
    kindShown: str
    key: str
    #: False for a withdrawal (section 4.6: the provider leaving).
    exists: bool
    value: bytes


def _env() -> dict[str, str]:
    env = sourceEnv()
    env.pop("SSLKEYLOGFILE", None)
    return env


def _reloadctl(*args: str) -> Any:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--json"],
        capture_output=True, text=True, env=_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _resourceId(name: bytes) -> str:
    """CHORD-RELOAD's Resource-ID of ``name`` (SHA-1 cut to 128 bits, 10.2)."""
    return hashlib.sha1(name).hexdigest()[:32]


def _responsible(ring: list[str], resourceId: str) -> str:
    return next((n for n in ring if n >= resourceId), ring[0])


def _cmdline(peer: LabPeer) -> str:
    assert peer.pid is not None
    return Path(f"/proc/{peer.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _held(peer: LabPeer, resourceId: str) -> Any:
    return _reloadctl("held", "--admin", peer.admin, "--resource", resourceId)


def _waitRegistered(holder: LabPeer, root: str, timeout: float = 60) -> None:
    """Until the peer responsible for the root holds a REDIR record there."""
    deadline = time.monotonic() + timeout
    while True:
        kinds = {k["kind"]: k["values"] for k in _held(holder, root)["kinds"]}
        if kinds.get(REDIR_KIND_ID):
            return
        assert time.monotonic() < deadline, f"no REDIR record at the root after {timeout} s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def registration(tmp_path_factory: pytest.TempPathFactory) -> CapturedRegistration:
    requireTool("dumpcap", "wireshark-common")
    requireTool("editcap", "wireshark-common")
    requireTool("tshark", "tshark")
    directory = tmp_path_factory.mktemp("redir-capture")
    lab = Lab(
        directory / "lab",
        basePort=None,
        adminBasePort=None,
        extraArgs=["--usage", "REDIR"],
        kinds=usageKindConfigs(loadUsages(["REDIR"])),
    )
    capture = LabCapture(
        lab.directory, directory / "redir.pcapng", lab.linkPorts(PEERS), findTools()
    )
    capture.start()
    lab.environment = capture.environment(_env())
    try:
        lab.start(PEERS)
        lab.waitConverged(60)
        nodeIds = {p.index: lab.status(p)["nodeId"] for p in lab.peers}
        ring = sorted(nodeIds.values())
        root = _resourceId(resourceName(NAMESPACE, 0, 0))
        holder = next(p for p in lab.peers if nodeIds[p.index] == _responsible(ring, root))
        assert _held(holder, root)["responsible"], "the lab's hash is not CHORD-RELOAD's"
        # Not the first peer: the restarted one joins through it.
        provider = next(p for p in lab.peers[1:] if p is not holder)
        lab.restartPeer(
            provider, extraArgs=["--usage-option", f"REDIR:provide={NAMESPACE.decode()}"]
        )
        lab.waitConverged(60)
        assert lab.status(provider)["nodeId"] == nodeIds[provider.index]
        # One provider: only the restarted peer runs with the option.
        assert [p.index for p in lab.peers if "REDIR:provide=" in _cmdline(p)] == [provider.index]
        _waitRegistered(holder, root)
    finally:
        lab.stopOneByOne()
        capture.finish()
    return CapturedRegistration(
        capture.output,
        readOptions(capture.ports, capture.luaScript),
        nodeIds[provider.index],
        root,
    )


# -- reading tshark's PDML ------------------------------------------------------------


def _pdml(capture: Path, options: list[str], displayFilter: str) -> ET.Element:
    result = subprocess.run(
        ["tshark", "-n", "-r", str(capture), *options, "-Y", displayFilter, "-T", "pdml"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return ET.fromstring(result.stdout)


def _messages(document: ET.Element) -> list[ET.Element]:
    """Every RELOAD message (a frame may hold several)."""
    return [p for p in document.iter("proto") if p.get("name") == "reload"]


def _fields(element: ET.Element, name: str) -> list[ET.Element]:
    return [f for f in element.iter("field") if f.get("name") == name]


def _one(element: ET.Element, name: str) -> ET.Element:
    [found] = _fields(element, name)
    return found


def _code(message: ET.Element) -> int:
    return int(_one(message, "reload.message.code").get("show", ""))


def _resource(body: ET.Element) -> str:
    return _one(_one(body, "reload.resource"), "reload.opaque.data").get("value", "")


def _storedEntries(message: ET.Element) -> Iterator[DecodedEntry]:
    """The REDIR dictionary entries of a StoreReq, as Wireshark decoded them."""
    store = _one(message, "reload.storereq")
    replica = int(_one(store, "reload.store.replica_number").get("show", ""))
    for kindData in _fields(store, "reload.kinddata"):
        kind = _one(kindData, "reload.kinddata.kind")
        if kind.get("show") != str(REDIR_KIND_ID):
            continue
        for entry in _fields(kindData, "reload.value"):
            key = _one(_one(entry, "reload.dictionarykey"), "reload.opaque.data")
            exists = _one(entry, "reload.datavalue.exists").get("show") == "1"
            value = _fields(_one(entry, "reload.datavaluevalue"), "reload.opaque.data")
            yield DecodedEntry(
                _resource(store),
                replica,
                kind.get("showname", ""),
                key.get("value", ""),
                exists,
                bytes.fromhex(value[0].get("value", "")) if value else b"",
            )


@dataclass(frozen=True)
class DecodedFetch:
    resource: str
    kindShown: str
    #: The specifier's dictionary keys as Wireshark shows them ("indices(0 keys)").
    keysShown: str


def _fetchedKinds(message: ET.Element) -> Iterator[DecodedFetch]:
    fetch = _one(message, "reload.fetchreq")
    keys = _fields(fetch, "reload.storeddataspecifier.keys")
    specifiers = _fields(fetch, "reload.storeddataspecifier")
    for specifier, shown in zip(specifiers, keys, strict=True):
        kind = _one(specifier, "reload.kinddata.kind")
        if kind.get("show") == str(REDIR_KIND_ID):
            yield DecodedFetch(
                _resource(fetch), kind.get("showname", ""), shown.get("showname", "")
            )


def _redirMessages(registration: CapturedRegistration, table: list[str]) -> list[ET.Element]:
    document = _pdml(
        registration.capture,
        [*registration.options, *table],
        f"reload.kinddata.kind == {REDIR_KIND_ID} && (reload.storereq || reload.fetchreq)",
    )
    # A frame can hold other messages besides the REDIR ones the filter found.
    return [
        m
        for m in _messages(document)
        if any(k.get("show") == str(REDIR_KIND_ID) for k in _fields(m, "reload.kinddata.kind"))
    ]


# -- the tests ---------------------------------------------------------------------------


def test_redir_store_and_fetch_of_the_root_decode_with_kind_0x104_configured_rfc7374_4_3(
    registration: CapturedRegistration,
) -> None:
    """Section 4.3: the provider Fetches the root tree node with a wildcard
    Fetch and Stores its record there, a DICTIONARY entry keyed by its own
    Node-ID (section 6); both cross the link to the root's peer, and
    Wireshark decodes both with Kind-ID 0x104 as REDIR."""
    messages = _redirMessages(registration, KIND_TABLE)
    stores = [e for m in messages if _code(m) == STORE_REQ for e in _storedEntries(m)]
    fetches = [f for m in messages if _code(m) == FETCH_REQ for f in _fetchedKinds(m)]
    record = RedirServiceProvider.forProvider(
        bytes.fromhex(registration.provider), NAMESPACE, 0, 0
    ).encode()
    own = [
        e for e in stores if e.resource == registration.root and e.replicaNumber == 0 and e.exists
    ]
    assert own, stores
    for entry in own:
        assert entry.kindShown == f"kind (KindId): {REDIR_KIND_ID} (REDIR)"
        assert entry.key == registration.provider
        # Wireshark shows the RFC record as opaque bytes: those usages/redir.py wrote.
        assert entry.value == record
        decoded = RedirServiceProvider.decode(entry.value)
        assert (decoded.namespace, decoded.level, decoded.node) == (NAMESPACE, 0, 0)
    # Every REDIR entry stored on the wire (the other tree nodes, replicas,
    # the withdrawals when the provider stops) is the provider's, and each
    # record is in the RFC layout.
    assert {e.key for e in stores} == {registration.provider}
    for entry in stores:
        if entry.exists:
            assert RedirServiceProvider.decode(entry.value).namespace == NAMESPACE
    rootFetches = [f for f in fetches if f.resource == registration.root]
    assert rootFetches, fetches
    for fetch in rootFetches:
        assert fetch.kindShown == f"kind (KindId): {REDIR_KIND_ID} (REDIR)"
        assert fetch.keysShown == "indices(0 keys)"  # a wildcard Fetch (section 4.3 step 2)


def test_wireshark_applies_no_draft_record_layout_to_kind_0x104_rfc7374_4_1(
    registration: CapturedRegistration,
) -> None:
    """Wireshark's draft-layout RedirServiceProvider parser is tied to its
    Kind-ID 104; for 0x104 nothing parses the RFC record as that layout."""
    drafted = tsharkFields(
        registration.capture,
        ["frame.number"],
        "reload.redirserviceprovider",
        extra=[*registration.options, *KIND_TABLE],
    )
    assert drafted == []


def test_without_the_kind_table_wireshark_does_not_decode_the_redir_entries(
    registration: CapturedRegistration,
) -> None:
    """The configuration is what makes the entries readable: without it
    Kind-ID 260 is unknown to Wireshark, shown without a name, and its
    StoredData values are not parsed into dictionary entries."""
    stores = [m for m in _redirMessages(registration, []) if _code(m) == STORE_REQ]
    assert stores
    for message in stores:
        assert not _fields(message, "reload.dictionarykey")
        shown = {k.get("showname") for k in _fields(message, "reload.kinddata.kind")}
        assert f"kind (KindId): {REDIR_KIND_ID}" in shown


def test_the_captured_redir_lab_has_no_malformed_packet(
    registration: CapturedRegistration,
) -> None:
    """No malformed packet in the capture, and no expert note anywhere in
    a RELOAD message (a truncated field, an unknown data model).  The
    loopback TCP's own notes (D-SACK and the like) are not RELOAD's."""
    options = [*registration.options, *KIND_TABLE]
    malformed = tsharkFields(registration.capture, ["frame.number"], "_ws.malformed", extra=options)
    assert malformed == []
    messages = _messages(_pdml(registration.capture, options, "reload"))
    assert messages
    notes = [
        (field.get("showname"), message.get("pos"))
        for message in messages
        for field in _fields(message, "_ws.expert")
    ]
    assert notes == []
