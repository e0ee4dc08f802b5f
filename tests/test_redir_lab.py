"""ReDiR service discovery (RFC 7374) between real peers over TLS, as an
operator runs it: ten peers with ``--usage REDIR``, three of them providers
of ``voice-mail`` (``REDIR:provide``), and a client (RFC 6940 section 4.2)
that finds them with ``reloadctl service lookup``.  A provider killed with
SIGKILL (no withdrawal) stops being returned once its records expire
(section 4.4)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from reload.lab import Lab, LabPeer

from .conftest import commandPath, sourceEnv
from .replication_support import PeerProcess, eventually

NAMESPACE = "voice-mail"
#: Short-lived registrations, so a crashed provider's records expire
#: within the test (section 4.4; the default is 600 s).
LIFETIME = 12
PROVIDERS = (1, 4, 7)


def reloadctl(admin: str, *args: str) -> tuple[int, Any, str]:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--admin", admin, "--json"],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    data = json.loads(result.stdout) if result.returncode == 0 else None
    return result.returncode, data, result.stderr


def closestSuccessor(key: str, providers: list[str]) -> str:
    """The provider ReDiR must answer for ``key`` (section 4.5): the first
    provider Node-ID after the key on the ring (usages/redir.py: strictly
    after), wrapping round to the lowest."""
    after = sorted(p for p in providers if int(p, 16) > int(key, 16))
    return after[0] if after else min(providers, key=lambda p: int(p, 16))


class RedirLab:
    """The lab, its client, and its providers (peer, Node-ID hex)."""

    def __init__(self, lab: Lab, client: PeerProcess, providers: list[tuple[LabPeer, str]]):
        self.lab = lab
        self.client = client
        self.providers = providers

    def live(self) -> list[str]:
        """The Node-IDs of the providers still running."""
        return [nodeId for peer, nodeId in self.providers if peer in self.lab.peers]


@pytest.fixture(scope="module")
def redirLab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedirLab]:
    directory = tmp_path_factory.mktemp("lab-redir")
    lab = Lab(directory, basePort=None, adminBasePort=None, environment=sourceEnv())
    lab.create()
    client = None
    try:
        for index in range(10):
            lab.extraArgs = ["--usage", "REDIR"]
            if index in PROVIDERS:
                lab.extraArgs += [
                    "--usage-option", f"REDIR:provide={NAMESPACE}",
                    "--usage-option", f"REDIR:lifetime={LIFETIME}",
                ]  # fmt: skip
            lab.startPeer()
            lab.waitConverged(90)
        client = PeerProcess(
            directory,
            "client",
            ["--client", "--bootstrap", lab.peers[0].address, "--usage", "REDIR"],
        )
        client.start()
        providers = [(lab.peers[i], lab.status(lab.peers[i])["nodeId"]) for i in PROVIDERS]
        yield RedirLab(lab, client, providers)
    finally:
        if client is not None and client.process is not None:
            client.kill(signal.SIGTERM)
        lab.stop()


def test_a_client_finds_the_closest_provider_with_reloadctl_service_lookup(
    redirLab: RedirLab,
) -> None:
    providers = redirLab.live()
    admin = redirLab.client.lab.admin
    keys = [*providers, "00" * 16, "ff" * 16, *(p[:-1] + "0" for p in providers)]

    def allFound() -> list[tuple[str, str]] | None:
        found = []
        for key in keys:
            code, result, _ = reloadctl(admin, "service", "lookup", NAMESPACE, "--key", key)
            if code != 0:
                return None
            found.append((result["provider"], closestSuccessor(key, providers)))
        return found

    found = eventually(allFound, 60, interval=2)
    assert found, "lookups kept failing"
    assert [got for got, _ in found] == [want for _, want in found]
    # A namespace nobody provides: a clear answer, not a hang.
    code, _, err = reloadctl(admin, "service", "lookup", "no-such-service")
    assert code == 1
    assert "no provider of 'no-such-service'" in err


def test_providers_list_what_they_registered(redirLab: RedirLab) -> None:
    provider, _ = redirLab.providers[0]
    code, result, err = reloadctl(provider.admin, "service", "list")
    assert code == 0, err
    assert result["provides"] == [NAMESPACE]
    shown = subprocess.run(
        [commandPath("reloadctl"), "service", "list", "--admin", provider.admin],
        capture_output=True, text=True, env=sourceEnv(), timeout=60, check=True,
    ).stdout  # fmt: skip
    assert shown.startswith(f"{NAMESPACE}  (last stored at level ")


def test_a_killed_provider_stops_being_returned_once_its_records_expire(
    redirLab: RedirLab,
) -> None:
    victim, victimId = redirLab.providers[1]
    redirLab.lab.stopPeer(victim, signal.SIGKILL)
    survivors = redirLab.live()
    assert victimId not in survivors and len(survivors) == 2
    # Before its records expire a lookup may still name it; a caller that
    # finds it dead asks again from its Node-ID and gets the next one
    # (successors are strictly after the key, section 4.5).
    code, result, err = reloadctl(
        redirLab.client.lab.admin, "service", "lookup", NAMESPACE, "--key", victimId
    )
    assert code == 0, err
    assert result["provider"] == closestSuccessor(victimId, survivors)
    # The key whose closest provider was the victim.
    key = victimId[:-1] + "0"

    def answer() -> str | None:
        admin = redirLab.client.lab.admin
        code, result, _ = reloadctl(admin, "service", "lookup", NAMESPACE, "--key", key)
        return result["provider"] if code == 0 and result["provider"] != victimId else None

    provider = eventually(answer, 4 * LIFETIME, interval=2)
    assert provider == closestSuccessor(key, survivors)


def test_bad_namespaces_are_refused_with_one_line(redirLab: RedirLab) -> None:
    code, _, err = reloadctl(redirLab.lab.peers[0].admin, "service", "register", "")
    assert code != 0
    assert "namespace" in err and "Traceback" not in err
