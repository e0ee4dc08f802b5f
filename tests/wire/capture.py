"""Writing encoded RELOAD messages into a capture file that tshark reads.

The Wireshark cross-check (issue 4) needs packets as a real capture holds
them: IPv4 on loopback addresses, a TCP connection with its handshake and
in-order segments, and UDP datagrams, each carrying one framed message
(RFC 6940 section 6.6.2).  This module writes the classic libpcap format
with LINKTYPE_RAW (IPv4 packets, no link header), checksums included.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LINKTYPE_RAW = 101
RELOAD_PORT = 6084
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def dataFrame(sequence: int, message: bytes) -> bytes:
    """A DATA frame (type 128) of the framing header, section 6.6.2."""
    return bytes((128,)) + sequence.to_bytes(4, "big") + len(message).to_bytes(3, "big") + message


@dataclass
class CaptureWriter:
    """Collects packets; :meth:`write` saves them as a pcap file."""

    client: bytes = bytes((127, 0, 0, 1))
    server: bytes = bytes((127, 0, 0, 2))
    packets: list[bytes] = field(default_factory=list)
    _ident: int = 1
    _seq: dict[tuple[int, int], int] = field(default_factory=dict)

    def _add(self, packet: bytes) -> None:
        self.packets.append(packet)
        self._ident += 1

    def udp(
        self, payload: bytes, fromClient: bool = True, cport: int = 40000, sport: int = RELOAD_PORT
    ) -> None:
        """One datagram between the client port ``cport`` and the server
        port ``sport``, in the direction ``fromClient`` says."""
        src, dst = (self.client, self.server) if fromClient else (self.server, self.client)
        srcPort, dstPort = (cport, sport) if fromClient else (sport, cport)
        length = 8 + len(payload)
        header = struct.pack("!HHHH", srcPort, dstPort, length, 0)
        csum = _checksum(_pseudo(src, dst, 17, length) + header + payload) or 0xFFFF
        header = header[:6] + struct.pack("!H", csum)
        self._add(_ipv4(src, dst, 17, header + payload, self._ident))

    def _tcp(
        self, src: bytes, dst: bytes, sport: int, dport: int, flags: int, payload: bytes = b""
    ) -> None:
        seq = self._seq.get((sport, dport), 1000)
        ack = self._seq.get((dport, sport), 1000)
        header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
        csum = _checksum(_pseudo(src, dst, 6, len(header) + len(payload)) + header + payload)
        header = header[:16] + struct.pack("!H", csum) + header[18:]
        self._add(_ipv4(src, dst, 6, header + payload, self._ident))
        advance = len(payload) + (1 if flags & 0x03 else 0)  # SYN and FIN count one
        self._seq[(sport, dport)] = seq + advance

    def tcpConnection(
        self, segments: Iterable[tuple[bool, bytes]], sport: int = 40001, dport: int = RELOAD_PORT
    ) -> None:
        """A TCP connection: handshake, then each (fromClient, bytes) as a
        segment acknowledged by the other side, then FIN from both."""
        c, s = self.client, self.server
        SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
        self._tcp(c, s, sport, dport, SYN)
        self._tcp(s, c, dport, sport, SYN | ACK)
        self._tcp(c, s, sport, dport, ACK)
        for fromClient, data in segments:
            if fromClient:
                self._tcp(c, s, sport, dport, PSH | ACK, data)
                self._tcp(s, c, dport, sport, ACK)
            else:
                self._tcp(s, c, dport, sport, PSH | ACK, data)
                self._tcp(c, s, sport, dport, ACK)
        self._tcp(c, s, sport, dport, FIN | ACK)
        self._tcp(s, c, dport, sport, FIN | ACK)
        self._tcp(c, s, sport, dport, ACK)

    def write(self, path: Path) -> None:
        out = [_PCAP_HEADER]
        for n, packet in enumerate(self.packets):
            out.append(struct.pack("<IIII", 1_700_000_000 + n, 0, len(packet), len(packet)))
            out.append(packet)
        path.write_bytes(b"".join(out))


def tsharkFields(
    capture: Path, fields: Sequence[str], displayFilter: str = "reload", extra: Sequence[str] = ()
) -> list[dict[str, list[str]]]:
    """Run tshark on ``capture``; one dict per matching packet, each field a
    list of all its occurrences."""
    tshark = shutil.which("tshark")
    if tshark is None:
        raise FileNotFoundError("tshark")
    args = [
        tshark,
        "-n",
        "-r",
        str(capture),
        "-Y",
        displayFilter,
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]
    for name in fields:
        args += ["-e", name]
    result = subprocess.run([*args, *extra], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"tshark failed: {result.stderr.strip()}")
    rows = []
    for line in result.stdout.splitlines():
        values = line.split("\t")
        rows.append(
            {name: (v.split("|") if v else []) for name, v in zip(fields, values, strict=False)}
        )
    return rows
