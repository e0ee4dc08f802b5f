"""The command line for people (issue 23): a bad option or argument is one
line naming it and the reason, with a hint to ``--help`` (``twistd reload``,
``twistd reload-enrollment``, ``reloadctl``); ``reloadctl`` prints tables
and sentences, never a Python repr, and ``--json`` on every subcommand."""

# ruff: noqa: E501 -- the tables of expected lines read best one per line

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.config import KindConfig, defaultConfiguration, writeConfiguration
from reload.ctl.main import buildParser
from reload.lab import Lab

from .conftest import commandPath, sourceEnv, twistd

NOTES = 0xF0000001
USER = "alice@example.org"


def _lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("reload", ["--storage-quota", "abc"], "--storage-quota 'abc': not a size"),
        ("reload", ["--admin", "tcp:notaport"], "--admin 'tcp:notaport': the tcp port 'notaport' is not a number"),
        ("reload", ["--data-dir", "/proc/forbidden"], "--data-dir /proc/forbidden: cannot create it"),
        ("reload", ["--advertise", "::::"], "--advertise '::::': not an IP address or a host name"),
        ("reload", ["--listen", "tcp:70000"], "--listen 'tcp:70000': port 70000 is not in 0-65535"),
        ("reload", ["--max-links", "many"], "--max-links 'many': expected a whole number"),
        ("reload", ["--direct-links", "y"], "--direct-links 'y': expected a whole number"),
        ("reload", ["--storage-sync", "sometimes"], "--storage-sync 'sometimes': expected normal or full"),
        ("reload", ["--admin-host", "a/b"], "--admin-host 'a/b': expected a host name"),
        ("reload", ["--no-such-option"], "option --no-such-option not recognized"),
        ("reload", ["--kind", "42"], "--kind '42': use a private Kind-ID, 0xf0000001 to 0xfffffffe"),
        ("reload", ["--kind", "0xf0000001:heap"], "--kind '0xf0000001:heap': data model 'heap' is not single, array or dictionary"),
        ("reload-enrollment", ["--data-dir", "/proc/forbidden"], "--data-dir /proc/forbidden: cannot create it"),
        ("reload-enrollment", ["--listen", "tcp:notaport"], "--listen 'tcp:notaport': the tcp port"),
        ("reload-enrollment", ["--node-ids-per-user", "abc"], "--node-ids-per-user 'abc': expected a number"),
    ],
)  # fmt: skip
def test_a_bad_twistd_option_is_one_line_naming_it(
    tmp_path: Path, command: str, args: list[str], expected: str
) -> None:
    result = twistd("-n", command, *args, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    [line] = _lines(result)
    assert line.startswith(f"twistd {command}: error: {expected}"), line
    assert line.endswith(f"(see 'twistd {command} --help')")
    assert not list(tmp_path.iterdir()), "nothing is created for a bad command line"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["lab", "--peers", "0"], "reloadctl lab: error: argument --peers: must be from 1 to 200, got 0"),
        (["status", "--timeout", "soon"], "reloadctl status: error: argument --timeout: 'soon' is not a number of seconds"),
        (["ping", "--count", "-1", "abcd"], "reloadctl ping: error: argument --count: must be from 1 to 10000, got -1"),
        (["store", "--kind", "1", "--value", "x"], "reloadctl store: error: one of the arguments --name --resource --node is required"),
        (["frobnicate"], "reloadctl: error: argument COMMAND: invalid choice: 'frobnicate'"),
        (["status", "--admin", "tcp:notaport"], "reloadctl status: error: argument --admin: 'tcp:notaport' is not HOST:PORT or a URL"),
        (["held", "--admin", "127.0.0.1:99999", "--resource", "00"], "reloadctl held: error: argument --admin: '127.0.0.1:99999' is not HOST:PORT or a URL (Port out of range 0-65535)"),
        (["service", "list", "--admin", "ftp://h:1"], "reloadctl service: error: argument --admin: 'ftp://h:1': the admin API speaks http or https"),
    ],
)  # fmt: skip
def test_a_bad_reloadctl_argument_is_one_line_naming_it(args: list[str], expected: str) -> None:
    result = subprocess.run(
        [commandPath("reloadctl"), *args],
        capture_output=True,
        text=True,
        env=sourceEnv(),
        timeout=60,
    )
    assert result.returncode == 2
    [line] = _lines(result)
    assert line.startswith(expected), line
    assert re.search(r"\(see 'reloadctl( \w+)? --help'\)$", line), line


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subcommands(sub))


def test_every_reloadctl_subcommand_takes_json() -> None:
    names = []
    for name, sub in _subcommands(buildParser()):
        names.append(name)
        assert any("--json" in a.option_strings for a in sub._actions), name
    assert {"status", "ring", "store", "fetch", "stat", "lab", "lab stop", "plugins"} <= set(names)


# -- output for people, from a real lab ---------------------------------------------

REPR = re.compile(r"[{}]|\w+\(\w+=|\[\]|'\w+': |\bNone\b|\bTrue\b|\bFalse\b")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    notes = KindConfig(
        kindId=NOTES, name=None, maxCount=8, maxSize=64, maxNodeMultiple=None,
        dataModel="DICTIONARY", accessControl="USER-MATCH",
    )  # fmt: skip
    lab = Lab(
        tmp_path_factory.mktemp("people"),
        basePort=None,
        adminBasePort=None,
        extraArgs=["--user", USER],
        environment=sourceEnv(),
        kinds=[notes],
    )
    lab.start(2)
    try:
        lab.waitConverged(60)
        yield lab
    finally:
        lab.stop()


def reloadctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [commandPath("reloadctl"), *args],
        capture_output=True,
        text=True,
        env=sourceEnv(),
        timeout=60,
    )


def test_status_is_a_table_of_plain_values(lab: Lab) -> None:
    peer = lab.peers[0]
    result = reloadctl("status", "--admin", peer.admin)
    assert result.returncode == 0, result.stderr
    assert not REPR.search(result.stdout), result.stdout
    status = json.loads(reloadctl("status", "--admin", peer.admin, "--json").stdout)
    assert re.search(rf"^Node-ID\s+{status['nodeId']}$", result.stdout, re.M)
    assert re.search(r"^state\s+joined, as a peer$", result.stdout, re.M)
    assert re.search(rf"^links\s+{len(status['links'])} \(tls ", result.stdout, re.M)
    assert "quota per signer 64 MiB" in result.stdout


def test_stat_and_fetch_speak_plainly_of_values_and_missing_keys(lab: Lab) -> None:
    admin = ["--admin", lab.peers[0].admin, "--kind", hex(NOTES), "--name", USER]
    stored = reloadctl("store", *admin, "--key", "k1", "--value", "buy milk")
    assert stored.returncode == 0, stored.stderr
    assert re.match(
        r"Stored under Kind 0xf0000001 at [0-9a-f]+ \(generation \d+\); 1 replica placed\.$",
        stored.stdout,
    )

    stat = reloadctl("stat", *admin, "--key", "k1")
    assert stat.returncode == 0, stat.stderr
    assert not REPR.search(stat.stdout) and "Meta" not in stat.stdout, stat.stdout
    assert re.search(
        r"key k1\s+\d+ bytes\s+sha256 [0-9a-f]{16}\s+(1 d 0 h|23 h 59 min)", stat.stdout
    ), stat.stdout

    fetched = reloadctl("fetch", *admin, "--key", "k1")
    assert re.search(r"key k1\s+buy milk\s+(1 d 0 h|23 h 59 min)", fetched.stdout), fetched.stdout

    missing = reloadctl("fetch", *admin, "--key", "k5")
    assert missing.returncode == 0, missing.stderr
    assert missing.stdout.strip().endswith(": no value stored"), missing.stdout
    assert "lifetime 0" not in missing.stdout


def test_lab_and_lab_stop_print_json_for_scripts(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    started = reloadctl(
        "lab", "--peers", "1", "--dir", str(directory), "--detach", "--json",
        "--base-port", "0", "--admin-base-port", "0",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        out = json.loads(started.stdout)
        [peer] = out["peers"]
        assert re.fullmatch(r"[0-9a-f]{32}", peer["nodeId"])
        assert Path(peer["tokenFile"]).is_file()
    finally:
        stopped = reloadctl("lab", "stop", "--dir", str(directory), "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == {"dir": str(directory), "stopped": 1}


def test_kind_is_added_to_a_new_overlay_and_refused_for_an_existing_one(tmp_path: Path) -> None:
    from twisted.python import usage

    from reload.tap import Options

    fresh = Options()
    fresh.parseOptions(["--data-dir", str(tmp_path / "new"), "--kind", "0xf0000002:dictionary"])
    kind = fresh["settings"].configuration.kind(0xF0000002)
    assert (kind.dataModel, kind.accessControl) == ("DICTIONARY", "USER-MATCH")
    config = tmp_path / "overlay.xml"
    config.write_bytes(writeConfiguration(defaultConfiguration("existing.reload.local")))
    existing = Options()
    with pytest.raises(usage.UsageError, match=r"--kind 0xf0000002: the overlay configuration"):
        existing.parseOptions(["--config", str(config), "--data-dir", str(tmp_path / "old"),
                               "--kind", "0xf0000002"])  # fmt: skip
