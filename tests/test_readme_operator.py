"""The README's operator guide works as written (issue 23): every command
block fenced as ``sh`` in "For operators" runs, in order, in one shell in
an empty directory, with this checkout's ``twistd`` and ``reloadctl``; each
block must succeed, and what it prints is checked where the guide says
what it shows."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

from .conftest import REPO, commandPath, sourceEnv

#: The ports the guide's commands name (a peer, its admin API, a lab).
PORTS = [6084, 8084, *range(16084, 16089), *range(18084, 18089)]


def operatorBlocks() -> list[str]:
    readme = (REPO / "README.md").read_text()
    guide = readme[readme.index("## For operators") : readme.index("## For plugin authors")]
    return re.findall(r"^```sh\n(.*?)^```$", guide, re.M | re.S)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        # As Twisted's listeners do: a port in TIME-WAIT is free to listen on.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_guide_has_runnable_blocks_for_each_part() -> None:
    text = "\n".join(operatorBlocks())
    for command in ("twistd", "reloadctl status", "reloadctl store", "reloadctl fetch",
                    "reloadctl lab --peers", "reloadctl lab stop", "kill"):  # fmt: skip
        assert command in text, command


def test_every_sh_block_of_the_operator_guide_runs_as_written(tmp_path: Path) -> None:
    busy = [port for port in PORTS if not _free(port)]
    assert not busy, f"the guide's ports {busy} are in use on this machine"
    env = sourceEnv()
    env["PATH"] = os.pathsep.join([str(Path(commandPath("twistd")).parent), env["PATH"]])
    outputs = []
    try:
        for block in operatorBlocks():
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert result.returncode == 0, (
                f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
            outputs.append(result.stdout)
    finally:
        # Whatever the guide started and a failure left running.
        pidFile = tmp_path / "peer.pid"
        if pidFile.exists():
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidFile.read_text()), signal.SIGTERM)
        if (tmp_path / "reload-lab" / "lab.json").exists():
            subprocess.run(
                [commandPath("reloadctl"), "lab", "stop"], cwd=tmp_path, env=env, timeout=60
            )
    walkthrough, watching, storing, held, _stopped, lab = outputs
    assert re.search(r"^state\s+joined", walkthrough, re.M)
    assert "reload_peer_joined 1.0" in watching
    assert "buy milk" in storing and "Stored under Kind 0xf0000001" in storing
    assert "This peer is responsible for" in held
    assert "from the lab" in lab and "Stopped 5 peers" in lab
