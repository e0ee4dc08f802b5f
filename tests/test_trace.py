"""``--trace-messages`` (issue 9): a traced peer logs one event per message
sent, received and forwarded, with method, transaction id, source,
destination, via list length, size and link; an untraced peer logs none."""

from __future__ import annotations

import re
from pathlib import Path

from reload.lab import Lab

from .conftest import sourceEnv

EVENT = re.compile(
    r"\[reload\.trace#info\] (sent|received|forwarded) (\w+) tid=([0-9a-f]{16}) "
    r"from (\S+) to ([0-9a-f]+) via (\d+) size (\d+) link (tls|dtls):([0-9a-f]{32})"
)


def test_traced_peers_log_every_message_and_others_do_not(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab", basePort=None, adminBasePort=None, environment=sourceEnv())
    lab.extraArgs = ["--trace-messages"]
    lab.start(2)
    lab.extraArgs = []
    untraced = lab.startPeer()
    try:
        lab.waitConverged(90)
    finally:
        lab.stop()
    for peer in (1, 2):
        log = (tmp_path / "lab" / f"peer-{peer}" / "twistd.log").read_text()
        events = EVENT.findall(log)
        assert events, log[-2000:]
        directions = {e[0] for e in events}
        methods = {e[1] for e in events}
        assert {"sent", "received"} <= directions
        assert {"join_req", "join_ans", "update_req", "update_ans"} & methods
        for *_, via, size, _, _ in events:
            assert int(size) >= 38 and int(via) >= 0
    log = Path(untraced.dataDir, "twistd.log").read_text()
    assert "reload.trace" not in log
    # Requests and answers pair up by transaction id on a traced peer.
    log = (tmp_path / "lab" / "peer-1" / "twistd.log").read_text()
    sent = {e[2] for e in EVENT.findall(log) if e[0] == "sent" and e[1].endswith("_req")}
    answered = {e[2] for e in EVENT.findall(log) if e[0] == "received" and e[1].endswith("_ans")}
    assert sent & answered
