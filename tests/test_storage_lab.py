"""Store and Fetch between real peers over TLS (issue 7, through
``reloadctl`` as a user runs it): a value stored through one peer is fetched,
verified, through another; the access policy and the Kind's limits are
enforced by the responsible peer."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from reload.config import KindConfig, defaultConfiguration, writeConfiguration
from reload.lab import Lab

from .conftest import commandPath, sourceEnv
from .replication_support import eventually

NOTES = 0xF0000001
USER = "alice@example.org"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    directory = tmp_path_factory.mktemp("lab-storage")
    base = defaultConfiguration("storage-lab.reload.local")
    notes = KindConfig(
        kindId=NOTES, name=None, maxCount=8, maxSize=64, maxNodeMultiple=None,
        dataModel="ARRAY", accessControl="USER-MATCH",
    )  # fmt: skip
    config = dataclasses.replace(base, kinds=(*base.kinds, notes))
    (directory / "overlay.xml").write_bytes(writeConfiguration(config))
    lab = Lab(
        directory,
        basePort=None,
        adminBasePort=None,
        extraArgs=["--user", USER],
        environment=sourceEnv(),
    )
    lab.start(5)
    try:
        lab.waitConverged(90)
        yield lab
    finally:
        lab.stop()


def reloadctl(*args: str) -> tuple[int, Any, str]:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--json"],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    data = json.loads(result.stdout) if result.returncode == 0 else None
    return result.returncode, data, result.stderr


def test_value_stored_through_one_peer_is_fetched_through_another(lab: Lab) -> None:
    first, last = lab.peers[0], lab.peers[-1]
    code, stored, err = reloadctl(
        "store", "--admin", first.admin, "--kind", hex(NOTES), "--name", USER,
        "--value", "buy milk", "--index", "0",
    )  # fmt: skip
    assert code == 0, err
    assert stored["generation"] >= 1
    code, fetched, err = reloadctl(
        "fetch", "--admin", last.admin, "--kind", hex(NOTES), "--name", USER
    )
    assert code == 0, err
    [kind] = fetched["kinds"]
    assert kind["kind"] == NOTES
    assert [(v["index"], v["value"]) for v in kind["values"]] == [(0, "buy milk")]


def test_find_and_stat_see_the_value(lab: Lab) -> None:
    peer = lab.peers[1]
    reloadctl("store", "--admin", peer.admin, "--kind", hex(NOTES), "--name", USER,
              "--value", "call bob", "--index", "1")  # fmt: skip
    code, stat, err = reloadctl("stat", "--admin", peer.admin, "--kind", hex(NOTES), "--name", USER)
    assert code == 0, err
    assert len(stat["kinds"][0]["values"]) >= 2
    code, found, err = reloadctl(
        "find", "--admin", peer.admin, "--kind", hex(NOTES), "--name", USER
    )
    assert code == 0, err
    assert found["results"][0]["closest"] == found["resource"]


def test_writing_under_another_users_name_is_forbidden(lab: Lab) -> None:
    code, _, err = reloadctl(
        "store", "--admin", lab.peers[0].admin, "--kind", hex(NOTES),
        "--name", "bob@example.org", "--value", "not mine",
    )  # fmt: skip
    assert code == 1
    assert "Error_Forbidden" in err and "USER-MATCH" in err


def test_a_value_above_max_size_is_data_too_large(lab: Lab) -> None:
    code, _, err = reloadctl(
        "store", "--admin", lab.peers[0].admin, "--kind", hex(NOTES), "--name", USER,
        "--value", "x" * 65, "--index", "2",
    )  # fmt: skip
    assert code == 1
    assert "Error_Data_Too_Large" in err


def test_peers_store_their_certificates(lab: Lab) -> None:
    """Section 11.3.1: each peer stores its certificate (CERTIFICATE_BY_NODE),
    and it is found at the peer now responsible however the ring changed
    since (handover, sections 10.5 and 10.7.3)."""
    statuses = lab.statuses()

    def missing() -> list[str]:
        absent = []
        for status in statuses:
            code, fetched, err = reloadctl(
                "fetch", "--admin", lab.peers[0].admin, "--kind", "3", "--node", status["nodeId"]
            )
            assert code == 0, err
            if not fetched["kinds"][0]["values"]:
                absent.append(status["nodeId"])
        return absent

    assert eventually(lambda: not missing(), 60, interval=2), missing()


def test_held_shows_the_value_on_the_responsible_peer_and_two_replicas(lab: Lab) -> None:
    """Section 10.4, seen with ``reloadctl held`` on every peer."""
    code, _, err = reloadctl(
        "store", "--admin", lab.peers[0].admin, "--kind", hex(NOTES), "--name", USER,
        "--value", "replicated", "--index", "3",
    )  # fmt: skip
    assert code == 0, err
    roles = []
    for peer in lab.peers:
        code, held, err = reloadctl("held", "--admin", peer.admin, "--name", USER)
        assert code == 0, err
        if any(k["kind"] == NOTES and k["values"] for k in held["kinds"]):
            roles.append(held["responsible"])
    assert sorted(roles) == [False, False, True]
    human = subprocess.run(
        [commandPath("reloadctl"), "held", "--admin", lab.peers[0].admin, "--name", USER],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    assert human.returncode == 0 and "responsible for" in human.stdout
