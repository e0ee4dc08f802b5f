"""Capturing a lab's overlay traffic so that Wireshark can read it (issue 9).

``reloadctl lab --capture FILE`` runs ``dumpcap`` on the loopback interface,
restricted to the lab's link ports, while the peers append the secrets of
their TLS and DTLS links to one NSS key log (``SSLKEYLOGFILE``).  When the
lab stops, ``editcap --inject-secrets`` embeds the key log in the capture,
so that the file alone decrypts: nobody has to keep the key log beside it.

What Wireshark 4.0 then needs to show RELOAD messages, found by experiment:

* DTLS (``-d udp.port==P,dtls``): each DTLS record holds one frame and the
  built-in ``reload-framing`` heuristic finds it.  The ``tls`` secrets type
  of editcap covers DTLS 1.2 (``CLIENT_RANDOM`` lines) as well as TLS 1.3.
* TLS (``-d tcp.port==P,tls``): ``reload-framing`` cannot be named in the
  ``tls.port`` Decode As table, and where it can be attached (the
  ``ssl_keys`` table) it reads only the first frame of a TLS record -- its
  TCP variant reads every later frame's length at the wrong offset.  A
  record often holds an ACK and a DATA frame, or several DATA frames, so
  half the messages would be missing.  :data:`TLS_FRAMING_LUA`, written
  beside the capture, cuts each decrypted record into frames and hands each
  frame to the built-in dissector; the lab's ports are its arguments.

The state of a running capture is kept in the lab directory
(``capture.json``), so that ``reloadctl lab stop`` can finish a capture that
a detached ``reloadctl lab`` started.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reload.lab import pidRunning
from reload.security.keylog import KEYLOG_VARIABLE

__all__ = [
    "CaptureError",
    "CaptureTools",
    "LabCapture",
    "captureFilter",
    "findTools",
    "portRanges",
    "readOptions",
]

#: Files in the lab directory.
STATE_FILE = "capture.json"
RAW_FILE = "capture-raw.pcapng"
KEYLOG_FILE = "keys.log"
CAPTURER_LOG = "capture.log"
#: Written beside the capture: the same text for every capture.
LUA_FILE = "reload-tls.lua"

#: The loopback interface, where every lab peer listens.
INTERFACE = "lo"

#: Which Debian package brings which tool.
PACKAGES = {"dumpcap": "wireshark-common", "editcap": "wireshark-common", "tshark": "tshark"}

TLS_FRAMING_LUA = """\
-- RELOAD framing (RFC 6940 section 6.6.2) inside TLS, for Wireshark/tshark 4.0.
-- Written by `reloadctl lab --capture`.  The built-in reload-framing dissector
-- reads only the first frame of a decrypted TLS record; this one cuts every
-- record into frames and hands each frame to it.  Its arguments are the TCP
-- ports (or FIRST-LAST ranges) whose TLS payload is RELOAD:
--   tshark -X lua_script:reload-tls.lua -X lua_script1:16084-16088 ...
local framing = Dissector.get("reload-framing")
local DATA, ACK = 128, 129
local proto = Proto("reload-tls", "RELOAD framing over TLS")

-- Size of the frame at offset, -1 when its header is cut, nil when no frame.
local function frameSize(tvb, offset)
  local kind = tvb(offset, 1):uint()
  if kind == ACK then return 9 end
  if kind ~= DATA then return nil end
  if tvb:len() - offset < 8 then return -1 end
  return 8 + tvb(offset + 5, 3):uint()
end

function proto.dissector(tvb, pinfo, tree)
  local length, offset, infos = tvb:len(), 0, {}
  while offset < length do
    local size = frameSize(tvb, offset)
    if size == nil then break end
    if size < 0 or offset + size > length then
      -- The frame goes on in the next record: ask TLS for more.
      pinfo.desegment_offset = offset
      pinfo.desegment_len = size < 0 and DESEGMENT_ONE_MORE_SEGMENT or offset + size - length
      break
    end
    framing:call(tvb(offset, size):tvb(), pinfo, tree)
    local info = tostring(pinfo.cols.info)
    if info ~= "" and info ~= "ACK" then infos[#infos + 1] = info end
    offset = offset + size
  end
  if #infos > 0 then
    pinfo.cols.protocol:set("RELOAD")
    pinfo.cols.info:set(table.concat(infos, ", "))
  end
  return length
end

local tls = DissectorTable.get("tls.port")
for _, argument in ipairs({...}) do
  for item in argument:gmatch("[^,]+") do
    local first, last = item:match("^(%d+)-(%d+)$")
    first = tonumber(first or item)
    for port = first, tonumber(last or first) do tls:add(port, proto) end
  end
end
"""


class CaptureError(Exception):
    """A capture cannot start or finish; the message is one line for the user."""


@dataclass(frozen=True)
class CaptureTools:
    """The programs a capture runs: ``dumpcap`` (or ``tshark``) and ``editcap``."""

    capturer: str
    editcap: str


def findTools(which: Callable[[str], str | None] = shutil.which) -> CaptureTools:
    """The capture tools on PATH.  Checked before any peer starts, so that a
    missing tool costs the user one line naming the package, not a lab."""
    capturer = which("dumpcap") or which("tshark")
    if capturer is None:
        raise CaptureError(
            f"--capture needs dumpcap (Debian package {PACKAGES['dumpcap']}) "
            f"or tshark (Debian package {PACKAGES['tshark']}); neither is installed"
        )
    editcap = which("editcap")
    if editcap is None:
        raise CaptureError(
            f"--capture needs editcap (Debian package {PACKAGES['editcap']}), "
            "which is not installed"
        )
    return CaptureTools(capturer, editcap)


def captureFilter(ports: Sequence[int]) -> str:
    """A BPF filter for the lab's links: TLS over TCP and DTLS over UDP on
    the peers' link ports, not their admin APIs nor anything else on lo."""
    either = " or ".join(f"port {port}" for port in sorted(set(ports)))
    return f"(tcp or udp) and ({either})"


def portRanges(ports: Sequence[int]) -> list[str]:
    """``ports`` as few ``P`` or ``FIRST-LAST`` items as possible: the lab's
    default ports count up, and one range keeps the command short."""
    ranges: list[str] = []
    ordered = sorted(set(ports))
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            first, last = ordered[start], ordered[i - 1]
            ranges.append(str(first) if first == last else f"{first}-{last}")
            start = i
    return ranges


def readOptions(ports: Sequence[int], luaScript: Path) -> list[str]:
    """tshark (or wireshark) options that show the lab's links as RELOAD."""
    ranges = portRanges(ports)
    options = ["-X", f"lua_script:{luaScript}", "-X", f"lua_script1:{','.join(ranges)}"]
    for item in ranges:
        options += ["-d", f"tcp.port=={item},tls"]
    for item in ranges:
        options += ["-d", f"udp.port=={item},dtls"]
    return options


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it is inside it:
    the printed command stays short enough to read."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


@dataclass
class LabCapture:
    """One capture of one lab: where it is written, which ports it watches,
    and (once started) the capturing process."""

    directory: Path
    output: Path
    ports: list[int]
    tools: CaptureTools
    pid: int | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def raw(self) -> Path:
        return self.directory / RAW_FILE

    @property
    def keyLog(self) -> Path:
        return self.directory / KEYLOG_FILE

    @property
    def luaScript(self) -> Path:
        return self.output.parent / LUA_FILE

    # -- state on disk ---------------------------------------------------------

    def save(self) -> None:
        state = {
            "output": str(self.output),
            "ports": self.ports,
            "tools": asdict(self.tools),
            "pid": self.pid,
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> LabCapture | None:
        """The capture a detached ``reloadctl lab`` left running in
        ``directory``, or None."""
        path = directory / STATE_FILE
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        return cls(
            directory.absolute(),
            Path(state["output"]),
            [int(p) for p in state["ports"]],
            CaptureTools(**state["tools"]),
            state["pid"],
        )

    @staticmethod
    def discard(directory: Path) -> None:
        """Forget a capture that never finished (its lab is gone), so that
        stopping the next lab in ``directory`` does not try to finish it."""
        (directory / STATE_FILE).unlink(missing_ok=True)

    # -- the peers' side -------------------------------------------------------

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with ``SSLKEYLOGFILE`` naming the lab's key log: only a
        captured lab's peers get it, since the secrets open every link."""
        return {**base, KEYLOG_VARIABLE: str(self.keyLog)}

    # -- start and finish ------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start capturing and return once the capturer listens, so that the
        first handshakes of the peers started next are in the file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.raw.unlink(missing_ok=True)
        # A fresh key log, created private (the peers append to it; editcap
        # wants the file even when no link was ever made).
        self.keyLog.unlink(missing_ok=True)
        os.close(os.open(self.keyLog, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        log = self.directory / CAPTURER_LOG
        args = [self.tools.capturer, "-q", "-i", INTERFACE, "-f", captureFilter(self.ports)]
        args += ["-w", str(self.raw)]
        with log.open("wb") as stderr:
            # Its own session: the Ctrl-C that stops the lab must not stop
            # the capture before the peers have left.
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self.pid = self._process.pid
        deadline = time.monotonic() + timeout
        while "Capturing on" not in log.read_text(errors="replace"):
            if self._process.poll() is not None:
                raise CaptureError(f"{self._name} failed: {self._lastLine(log)}")
            if time.monotonic() > deadline:
                self._stopCapturer()
                raise CaptureError(f"{self._name} did not start capturing in {timeout:.0f} s")
            time.sleep(0.05)
        self.save()

    def finish(self) -> list[str]:
        """Stop capturing, embed the key log in the capture, remove the raw
        file; the tshark command that reads the capture."""
        # Packets the last peers sent may still wait in the kernel's buffer.
        time.sleep(0.5)
        self._stopCapturer()
        if not self.raw.exists():
            raise CaptureError(
                f"{self._name} wrote no capture; see {self.directory / CAPTURER_LOG}"
            )
        result = subprocess.run(
            [self.tools.editcap, "--inject-secrets", f"tls,{self.keyLog}", str(self.raw),
             str(self.output)],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise CaptureError(f"editcap failed: {result.stderr.strip()}")
        self.raw.unlink()
        self.luaScript.write_text(TLS_FRAMING_LUA)
        (self.directory / STATE_FILE).unlink(missing_ok=True)
        return self.command("tshark")

    def command(self, program: str = "tshark") -> list[str]:
        """``program`` (tshark or wireshark) reading the capture as RELOAD."""
        options = readOptions(self.ports, _shown(self.luaScript))
        return [program, "-r", str(_shown(self.output)), *options, "-Y", "reload"]

    def commandLine(self, program: str = "tshark") -> str:
        return shlex.join(self.command(program))

    @property
    def _name(self) -> str:
        return Path(self.tools.capturer).name

    @staticmethod
    def _lastLine(log: Path) -> str:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no message"

    def _isCapturer(self, pid: int) -> bool:
        """Whether ``pid`` is still the capturer (and not a process that
        got its number after it died)."""
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            return True  # no /proc: trust the number
        return os.fsdecode(argv0) == self.tools.capturer

    def _stopCapturer(self, timeout: float = 10.0) -> None:
        """SIGINT, the way dumpcap finishes its file; then wait for it."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
                try:
                    self._process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            return
        if self.pid is None or not pidRunning(self.pid) or not self._isCapturer(self.pid):
            return
        os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while pidRunning(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pidRunning(self.pid):
            os.kill(self.pid, signal.SIGKILL)
