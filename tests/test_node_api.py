"""The node a plugin is given (``INode``), on real peers and a real client
joined over TLS on 127.0.0.1 in this process: it provides the whole
interface, speaks the public value types of ``reload.api.data``, fails with
``reload.errors.ReloadError``, and runs a usage's ``IKind.validate`` on
store and fetch (RFC 6940 sections 5.2, 7.4)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath
from zope.interface import implementer
from zope.interface.verify import verifyObject

from reload.api.data import Specifier, StoreResult
from reload.config import KindConfig, defaultConfiguration
from reload.errors import ReloadError
from reload.interfaces import DataModel, IKind, INode, IUsage
from reload.peer import OverlayPeer
from reload.plugins import loadTopology
from reload.settings import BootstrapAddress, PeerSettings
from reload.wire.message import ErrorCode
from reload.wire.storage import DataValue, DictionaryEntry

from .conftest import freePort

reactor: Any = _reactor
SHOUT = 0xF0000010
TALLY = 0xF0000011


@implementer(IKind)
class ShoutKind:
    """Upper-case text only: a Kind whose ``validate`` can say no."""

    name = "SHOUT"
    kindId = SHOUT
    dataModel = DataModel.DICTIONARY
    accessPolicy = "USER-NODE-MATCH"
    maxCount = 16
    maxSize = 64

    def validate(self, value: bytes) -> None:
        if value != value.upper():
            raise ValueError("a shout is upper case")

    def encode(self, value: object) -> bytes:
        assert isinstance(value, str)
        return value.encode()

    def decode(self, data: bytes) -> object:
        return data.decode()


@implementer(IUsage)
class ShoutUsage:
    name = "SHOUT-TEST"
    description = "a Kind with a validator, for the node API tests"
    options: Mapping[str, str] = {}

    def kinds(self) -> list[Any]:
        return [ShoutKind()]

    def accessPolicies(self) -> list[Any]:
        return []

    def checkOptions(self, options: Mapping[str, str]) -> None:
        return None

    def makeService(self, node: INode, options: dict[str, str]) -> None:
        return None


def _configuration() -> Any:
    base = defaultConfiguration(f"node-api-{secrets.token_hex(3)}.reload.local")
    extra = (
        KindConfig(kindId=SHOUT, maxCount=16, maxSize=64, dataModel="DICTIONARY",
                   accessControl="USER-NODE-MATCH"),
        KindConfig(kindId=TALLY, maxCount=8, maxSize=64, dataModel="ARRAY",
                   accessControl="NODE-MATCH"),
    )  # fmt: skip
    return dataclasses.replace(base, kinds=(*base.kinds, *extra))


def _settings(tmp: Path, name: str, configuration: Any, **more: Any) -> PeerSettings:
    return PeerSettings(
        configuration=configuration,
        dataDir=FilePath(str(tmp / name)),
        listen=f"tcp:{freePort()}:interface=127.0.0.1",
        topology=loadTopology("CHORD-RELOAD"),
        usages=(ShoutUsage(),),
        userName=f"{name}@example.org",
        advertise="127.0.0.1",
        **more,
    )


async def _joined(peer: OverlayPeer, seconds: float = 30) -> None:
    for _ in range(int(seconds * 10)):
        if peer.state == "joined":
            return
        if peer.state == "failed":
            raise AssertionError(f"peer failed: {peer.error}")
        await deferLater(reactor, 0.1, lambda: None)
    raise AssertionError(f"peer still {peer.state} after {seconds} s")


@pytest_twisted.async_yield_fixture
async def overlay(tmp_path: Path) -> AsyncIterator[tuple[OverlayPeer, OverlayPeer, OverlayPeer]]:
    configuration = _configuration()
    first = OverlayPeer(_settings(tmp_path, "first", configuration), reactor)
    first.startService()
    await _joined(first)
    assert first.address is not None
    bootstrap = (BootstrapAddress(*first.address),)
    second = OverlayPeer(_settings(tmp_path, "second", configuration, bootstrap=bootstrap), reactor)
    client = OverlayPeer(
        _settings(tmp_path, "client", configuration, bootstrap=bootstrap, client=True), reactor
    )
    second.startService()
    await _joined(second)
    client.startService()
    await _joined(client)
    try:
        yield first, second, client
    finally:
        for peer in (client, second, first):
            await peer.stopService()


@pytest_twisted.ensureDeferred
async def test_peers_and_clients_provide_the_whole_node_api(overlay: Any) -> None:
    for peer in overlay:
        assert peer.api is not None
        assert verifyObject(INode, peer.api)
        assert peer.api.nodeId == peer.identity.nodeId
        assert peer.api.overlayName == peer.configuration.instanceName
    assert overlay[2].settings.client


@pytest_twisted.ensureDeferred
async def test_a_value_stored_through_a_client_is_fetched_verified_through_a_peer(
    overlay: Any,
) -> None:
    first, second, client = overlay
    node = client.api
    resource = node.resourceId(b"client@example.org")
    results = await node.store(resource, SHOUT, {node.nodeId: b"HELLO"})
    assert results[0].kindId == SHOUT and results[0].generation >= 1
    assert isinstance(results[0], StoreResult)
    [kind] = await second.api.fetch(resource, [SHOUT])
    assert kind.kindId == SHOUT
    [value] = kind.values
    assert (value.entry, value.value, value.exists) == (node.nodeId, b"HELLO", True)
    assert value.signerNodeId == node.nodeId
    assert value.signerUserName == "client@example.org"
    [meta] = await first.api.stat(resource, [Specifier(SHOUT, keys=(node.nodeId,))])
    assert [(e.entry, e.size, e.exists) for e in meta.entries] == [(node.nodeId, 5, True)]
    found = await first.api.find(resource, [SHOUT, TALLY])
    assert found[SHOUT] == resource
    assert found[TALLY] is None


@pytest_twisted.ensureDeferred
async def test_arrays_take_index_mappings_and_none_deletes(overlay: Any) -> None:
    node = overlay[1].api
    resource = node.resourceId(node.nodeId)
    await node.store(resource, TALLY, {0: b"one", 1: b"two"})
    await node.store(resource, TALLY, {0: None})
    [kind] = await overlay[0].api.fetch(resource, [Specifier(TALLY, indices=((0, 1),))])
    assert [(v.entry, v.exists, v.value) for v in kind.values] == [
        (0, False, b""),
        (1, True, b"two"),
    ]
    assert kind.existing() == {1: b"two"}


@pytest_twisted.ensureDeferred
async def test_the_kinds_validate_refuses_a_value_before_it_leaves(overlay: Any) -> None:
    node = overlay[2].api
    resource = node.resourceId(b"client@example.org")
    with pytest.raises(ReloadError) as caught:
        await node.store(resource, SHOUT, {node.nodeId: b"quiet"})
    assert caught.value.code == ErrorCode.INVALID_MESSAGE
    assert "a shout is upper case" in caught.value.text


@pytest_twisted.ensureDeferred
async def test_the_storing_peer_runs_the_kinds_validate_too(overlay: Any) -> None:
    """Section 7.4.1.1 on the responsible peer: a value that skipped the
    sender's check (a node without the usage) is refused there."""
    client = overlay[2]
    resource = client.api.resourceId(b"client@example.org")
    with pytest.raises(ReloadError) as caught:
        await client.storage.store(
            resource, SHOUT, [DictionaryEntry(client.identity.nodeId, DataValue(True, b"quiet"))]
        )
    assert caught.value.code == ErrorCode.INVALID_MESSAGE
    assert "a shout is upper case" in caught.value.text


@pytest_twisted.ensureDeferred
async def test_wrong_shapes_and_unknown_kinds_fail_with_clear_errors(overlay: Any) -> None:
    node = overlay[0].api
    resource = node.resourceId(node.nodeId)
    with pytest.raises(TypeError, match="SHOUT is DICTIONARY"):
        await node.store(resource, SHOUT, b"NOT A MAPPING")
    with pytest.raises(ValueError, match="not a uint32"):
        await node.store(resource, TALLY, {-1: b"x"})
    with pytest.raises(ReloadError) as caught:
        await node.store(resource, 0xF0000099, b"x")
    assert caught.value.code == ErrorCode.UNKNOWN_KIND
    with pytest.raises(ReloadError) as caught:
        await node.fetch(resource, [0xF0000099])
    assert caught.value.code == ErrorCode.UNKNOWN_KIND
    with pytest.raises(KeyError):
        node.kind(0xF0000099)
    assert isinstance(node.kind(SHOUT), ShoutKind)
    # A Kind of the configuration that no usage here brings.
    assert node.kind(0x3).dataModel == DataModel.ARRAY
