"""Tests for reload.config: the overlay configuration document (RFC 6940 section 11.1)."""

from __future__ import annotations

import hashlib
from dataclasses import replace as dataclassReplace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reload.config import (
    SUPPORTED_EXTENSIONS,
    BootstrapNode,
    ConfigError,
    Extension,
    KindConfig,
    OverlayConfiguration,
    compareSequence,
    defaultConfiguration,
    diagnosticsAccess,
    isNewer,
    parseConfiguration,
    parseKindBlocks,
    redirBranchingFactor,
    replace,
    selfTuningPeersToProbe,
    shareVariableResourceNames,
    signedBytes,
    sipDomainRestriction,
    writeConfiguration,
)
from reload.config.namespaces import BASE, CHORD, DIAGNOSTICS, REDIR, SELF_TUNING, SHARE, SIP
from reload.wire.header import overlay_hash

DATA = Path(__file__).parent / "config"
RFC_EXAMPLE = (DATA / "rfc6940-example.xml").read_bytes()
EXT1 = "urn:ietf:params:xml:ns:p2p:config-ext1"
WITH_EXT1 = SUPPORTED_EXTENSIONS | {EXT1}


def rfcExample() -> OverlayConfiguration:
    return parseConfiguration(RFC_EXAMPLE, "overlay.example.org", supportedExtensions=WITH_EXT1)


def document(body: str = "", attributes: str = "", after: str = "") -> bytes:
    """A one-configuration document with ``body`` inside <configuration>."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<overlay xmlns="{BASE}" xmlns:chord="{CHORD}" xmlns:redir="{REDIR}" '
        f'xmlns:sip="{SIP}" xmlns:st="{SELF_TUNING}" xmlns:diag="{DIAGNOSTICS}" '
        f'xmlns:share="{SHARE}" xmlns:x="urn:example:x">\n'
        f'<configuration instance-name="overlay.example.org"{attributes}>{body}</configuration>'
        f"{after}</overlay>"
    ).encode()


def kindBlock(
    inner: str = "",
    identity: str = 'id="4000000001"',
    model: str = "ARRAY",
    policy: str = "USER-MATCH",
    count: str = "<max-count>5</max-count><max-size>100</max-size>",
) -> str:
    return (
        f"<required-kinds><kind-block><kind {identity}><data-model>{model}</data-model>"
        f"<access-control>{policy}</access-control>{count}{inner}</kind></kind-block>"
        f"</required-kinds>"
    )


def refused(data: bytes, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parseConfiguration(data, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return info.value


# -- the RFC's example document ------------------------------------------------------------


def test_rfc_example_configuration_values_section_11_1() -> None:
    config = rfcExample()
    assert config.instanceName == "overlay.example.org"
    assert config.sequence == 22
    assert config.expiration == datetime(2002, 10, 10, 7, 0, tzinfo=UTC)
    assert config.topologyPlugin == "CHORD-RELOAD"  # written " CHORD-RELOAD "
    assert config.nodeIdLength == 16
    assert len(config.rootCerts) == 2
    assert config.rootCerts[0][:2] == b"\x30\x82"  # DER SEQUENCE
    assert b"Sipit Test Certificate Authority" in config.rootCerts[0]
    assert config.rootCerts[1] == b"bad cert\n"
    assert config.enrollmentServers == ("https://example.org", "https://example.net")
    assert config.selfSignedPermitted is False
    assert config.selfSignedDigest == "sha1"
    assert config.bootstrapNodes == (
        BootstrapNode("192.0.0.1", 6084),
        BootstrapNode("192.0.2.2", 6084),
        BootstrapNode("2001:DB8::1", 6084),
    )
    assert config.turnDensity == 20
    assert config.clientsPermitted is False
    assert config.noIce is False
    assert config.chordUpdateInterval == 400
    assert config.chordPingInterval == 30
    assert config.chordReactive is True
    assert config.sharedSecret == "password"
    assert config.maxMessageSize == 4000
    assert config.initialTtl == 30
    assert config.overlayReliabilityTimer == 3000
    assert config.overlayLinkProtocols == ("TLS",)
    assert config.configurationSigners == ("47112162e84c69ba",)
    assert config.kindSigners == ("47112162e84c69ba", "6eba45d31a900c06")
    assert config.badNodes == ("6ebc45d31a900c06", "6ebc45d31a900ca6")
    assert config.mandatoryExtensions == (EXT1,)
    assert [e.tag for e in config.extensions] == [f"{{{EXT1}}}example-extension"]
    assert config.extensions[0].element().text == " foo "
    assert config.extensionAttributes == ((f"{{{EXT1}}}ext-example", "stuff"),)
    assert config.signature == b"This is not right!\n"
    assert config.signatureAlgorithm is None


def test_rfc_example_kinds_section_11_1() -> None:
    sip, private = rfcExample().kinds
    assert sip.name == "SIP-REGISTRATION" and sip.kindId is None
    assert (sip.dataModel, sip.accessControl, sip.maxCount, sip.maxSize) == (
        "SINGLE",
        "USER-MATCH",
        1,
        100,
    )
    assert sip.maxNodeMultiple is None
    assert sip.kindSignature == b"This is not right!\n"
    assert sip.effectiveId == 1
    assert private.kindId == 2000 and private.name is None
    assert (private.dataModel, private.accessControl) == ("ARRAY", "NODE-MULTIPLE")
    assert (private.maxNodeMultiple, private.maxCount, private.maxSize) == (3, 22, 4)
    assert [e.localName for e in private.extensions] == ["example-kind-extension"]


def test_rfc_example_other_instance_has_the_defaults() -> None:
    other = parseConfiguration(RFC_EXAMPLE, "other.example.net")
    assert other == OverlayConfiguration(
        instanceName="other.example.net", signature=b"This is not right!\n"
    )
    assert other.topologyPlugin == "CHORD-RELOAD"
    assert other.maxMessageSize == 5000
    assert other.initialTtl == 100
    assert other.nodeIdLength == 16
    assert other.overlayLinkProtocols == ("TLS",)
    assert other.clientsPermitted is True
    assert other.effectiveTurnDensity == 1
    assert other.effectiveChordReactive is True
    assert other.effectiveOverlayReliabilityTimer == 3000


def test_several_configurations_need_an_instance_name() -> None:
    error = refused(RFC_EXAMPLE)
    assert str(error) == (
        "overlay: has 2 configurations (overlay.example.org, other.example.net): "
        "choose an instance name"
    )
    error = refused(RFC_EXAMPLE, instanceName="nope.example")
    assert "overlay.example.org, other.example.net" in str(error)


def test_unsupported_mandatory_extension_is_refused() -> None:
    error = refused(RFC_EXAMPLE, instanceName="overlay.example.org")
    assert str(error) == (
        f"configuration/mandatory-extension: '{EXT1}' is not supported by this node"
    )


def test_signed_bytes_are_the_configuration_element_as_received() -> None:
    config = rfcExample()
    start = RFC_EXAMPLE.index(b'<configuration instance-name="overlay.example.org"')
    end = RFC_EXAMPLE.index(b"</configuration>") + len(b"</configuration>")
    assert signedBytes(config) == RFC_EXAMPLE[start:end]
    kindStart = RFC_EXAMPLE.index(b'<kind name="SIP-REGISTRATION">')
    kindEnd = RFC_EXAMPLE.index(b"</kind>") + len(b"</kind>")
    assert signedBytes(config.kinds[0]) == RFC_EXAMPLE[kindStart:kindEnd]
    other = parseConfiguration(RFC_EXAMPLE, "other.example.net")
    assert (
        signedBytes(other)
        == b'<configuration instance-name="other.example.net">\n   </configuration>'
    )


def test_signed_bytes_of_an_empty_element_and_of_a_written_config() -> None:
    data = document().replace(b"></configuration>", b"/>")
    assert (
        parseConfiguration(data).rawElement
        == b'<configuration instance-name="overlay.example.org"/>'
    )
    config = dataclassReplace(defaultConfiguration(), signature=b"sig")
    written = parseConfiguration(writeConfiguration(config))
    assert written.rawElement == signedBytes(config)
    assert written.kinds[0].rawElement == signedBytes(config.kinds[0])
    unsigned = dataclassReplace(config, signature=None)
    assert signedBytes(unsigned) == signedBytes(config)  # signing does not change them


def test_overlay_hash_is_lower_32_bits_of_sha1_section_6_3_2() -> None:
    config = rfcExample()
    digest = hashlib.sha1(b"overlay.example.org").digest()
    assert config.overlayHash() == int.from_bytes(digest[-4:], "big")
    assert config.overlayHash() == overlay_hash("overlay.example.org")


def test_rfc_example_round_trips() -> None:
    config = rfcExample()
    again = parseConfiguration(
        writeConfiguration(config), "overlay.example.org", supportedExtensions=WITH_EXT1
    )
    assert again == config
    both = [config, parseConfiguration(RFC_EXAMPLE, "other.example.net")]
    data = writeConfiguration(both)
    assert parseConfiguration(data, "other.example.net") == both[1]


# -- defaults and lookups --------------------------------------------------------------------


def test_default_configuration() -> None:
    config = defaultConfiguration()
    assert config.instanceName == "reload.local"
    assert (config.selfSignedPermitted, config.selfSignedDigest) == (True, "sha1")
    assert config.topologyPlugin == "CHORD-RELOAD"
    assert config.enrollmentServers == () and config.rootCerts == ()
    assert config.overlayLinkProtocols == ("TLS",)
    assert config.maxMessageSize == 5000
    turn = config.kind(2)
    assert turn is not None and turn.name == "TURN-SERVICE"
    assert (turn.dataModel, turn.accessControl, turn.maxNodeMultiple) == (
        "SINGLE",
        "NODE-MULTIPLE",
        20,
    )
    byNode, byUser = config.kind("CERTIFICATE_BY_NODE"), config.kind(0x10)
    assert byNode is not None and (byNode.dataModel, byNode.accessControl) == (
        "ARRAY",
        "NODE-MATCH",
    )
    assert byUser is not None and (byUser.dataModel, byUser.accessControl) == (
        "ARRAY",
        "USER-MATCH",
    )
    # The usages shipped with reload (DESIGN.md): REDIR, RFC 7374 sections 6
    # and 10.3, found by its IANA name and by its Kind-ID 0x104.
    redir = config.kind(0x104)
    assert redir is not None and redir is config.kind("REDIR") and redir.name == "REDIR"
    assert (redir.dataModel, redir.accessControl) == ("DICTIONARY", "NODE-ID-MATCH")
    assert config.kind(0x4) is None
    assert parseConfiguration(writeConfiguration(config)) == config
    assert defaultConfiguration("lab.example").instanceName == "lab.example"


def test_kind_lookup_by_name_matches_an_id_and_back() -> None:
    config = OverlayConfiguration(
        instanceName="a.example",
        kinds=(
            KindConfig(
                kindId=2,
                maxCount=1,
                maxSize=10,
                dataModel="SINGLE",
                accessControl="NODE-MULTIPLE",
                maxNodeMultiple=1,
            ),
        ),
    )
    assert config.kind("TURN-SERVICE") is config.kinds[0]
    assert config.kind(2) is config.kinds[0]
    assert config.kind("SIP-REGISTRATION") is None


def test_kind_needs_exactly_one_identity() -> None:
    with pytest.raises(ConfigError):
        KindConfig(maxCount=1, maxSize=1, dataModel="SINGLE", accessControl="USER-MATCH")
    with pytest.raises(ConfigError):
        KindConfig(
            kindId=5,
            name="X",
            maxCount=1,
            maxSize=1,
            dataModel="SINGLE",
            accessControl="USER-MATCH",
        )


# -- validation: every rule gives one line naming the element ------------------------------

CASES = [
    # (body, attributes, expected message start, expected fragment)
    (
        "<max-message-size>abc</max-message-size>",
        "",
        "configuration/max-message-size: 'abc' is not an unsigned integer",
        "",
    ),
    (
        "<max-message-size>38</max-message-size>",
        "",
        "configuration/max-message-size:",
        "38-byte header",
    ),
    ("<max-message-size>-5</max-message-size>", "", "configuration/max-message-size:", "range"),
    ("<node-id-length>15</node-id-length>", "", "configuration/node-id-length:", "16..20"),
    ("<node-id-length>21</node-id-length>", "", "configuration/node-id-length:", "16..20"),
    ("<initial-ttl>0</initial-ttl>", "", "configuration/initial-ttl:", "1..255"),
    ("<initial-ttl>256</initial-ttl>", "", "configuration/initial-ttl:", "1..255"),
    ("<no-ice>yes</no-ice>", "", "configuration/no-ice: 'yes' is not a boolean", ""),
    (
        "<clients-permitted>TRUE</clients-permitted>",
        "",
        "configuration/clients-permitted:",
        "not a boolean",
    ),
    ("<root-cert>not*base64</root-cert>", "", "configuration/root-cert:", "not valid base64"),
    (
        "<root-cert>QUJD</root-cert><root-cert>QUJ</root-cert>",
        "",
        "configuration/root-cert:",
        "base64",
    ),
    ("<root-cert> </root-cert>", "", "configuration/root-cert:", "empty"),
    (
        "<enrollment-server>http://example.org</enrollment-server>",
        "",
        "configuration/enrollment-server:",
        "https",
    ),
    (
        "<self-signed-permitted>true</self-signed-permitted>",
        "",
        "configuration/self-signed-permitted@digest: required attribute is missing",
        "",
    ),
    (
        '<self-signed-permitted digest="md5">true</self-signed-permitted>',
        "",
        "configuration/self-signed-permitted@digest:",
        "sha1 or sha256",
    ),
    (
        '<bootstrap-node address="192.0.2.1" port="0"/>',
        "",
        "configuration/bootstrap-node@port:",
        "1..65535",
    ),
    (
        '<bootstrap-node address="192.0.2.1" port="65536"/>',
        "",
        "configuration/bootstrap-node@port:",
        "1..65535",
    ),
    (
        '<bootstrap-node address="192.0.2.1" port="http"/>',
        "",
        "configuration/bootstrap-node@port: 'http' is not a port number",
        "",
    ),
    (
        '<bootstrap-node address="300.1.2.3"/>',
        "",
        "configuration/bootstrap-node@address:",
        "not an IP address",
    ),
    (
        '<bootstrap-node address="no such host!"/>',
        "",
        "configuration/bootstrap-node@address:",
        "host name",
    ),
    ('<bootstrap-node port="6084"/>', "", "configuration/bootstrap-node@address:", "missing"),
    (
        '<bootstrap-node address="192.0.2.1" prot="1"/>',
        "",
        "configuration/bootstrap-node@prot:",
        "unexpected attribute",
    ),
    ("<turn-density>256</turn-density>", "", "configuration/turn-density:", "0..255"),
    (
        "<overlay-reliability-timer>199</overlay-reliability-timer>",
        "",
        "configuration/overlay-reliability-timer:",
        "200",
    ),
    (
        "<chord:chord-ping-interval>0</chord:chord-ping-interval>",
        "",
        "configuration/chord:chord-ping-interval:",
        "range",
    ),
    (
        "<chord:chord-reactive>maybe</chord:chord-reactive>",
        "",
        "configuration/chord:chord-reactive:",
        "boolean",
    ),
    (
        "<chord:chord-unknown>1</chord:chord-unknown>",
        "",
        "configuration/chord:chord-unknown: unexpected element",
        "",
    ),
    (
        "<max-mesage-size>10</max-mesage-size>",
        "",
        "configuration/max-mesage-size: unexpected element",
        "",
    ),
    (
        "<topology-plugin>A</topology-plugin><topology-plugin>B</topology-plugin>",
        "",
        "configuration/topology-plugin: appears more than once",
        "",
    ),
    ("<topology-plugin>  </topology-plugin>", "", "configuration/topology-plugin: is empty", ""),
    ("<no-ice><x/>true</no-ice>", "", "configuration/no-ice/x:", "unexpected element"),
    ('<no-ice flag="1">true</no-ice>', "", "configuration/no-ice@flag: unexpected attribute", ""),
    ("stray text<no-ice>true</no-ice>", "", "configuration: unexpected text 'stray text'", ""),
    ("<bad-node>xyz</bad-node>", "", "configuration/bad-node: 'xyz' is not a hexadecimal", ""),
    ("<kind-signer>abc</kind-signer>", "", "configuration/kind-signer:", "hexadecimal"),
    (
        "<mandatory-extension>urn:example:unknown</mandatory-extension>",
        "",
        "configuration/mandatory-extension: 'urn:example:unknown' is not supported",
        "",
    ),
    ("", ' sequence="abc"', "configuration@sequence: 'abc' is not an integer", ""),
    ("", ' sequence="65535"', "configuration@sequence:", "65535 is reserved"),
    ("", ' expiration="tomorrow"', "configuration@expiration:", "not a date and time"),
    ("", ' expiration="2030-01-01T00:00:00"', "configuration@expiration:", "no time zone"),
    ("", ' expiration="2030-02-30T00:00:00Z"', "configuration@expiration:", "not a valid"),
    ("", ' colour="red"', "configuration@colour: unexpected attribute", ""),
    # kinds
    (
        kindBlock(count="<max-count>0</max-count><max-size>100</max-size>"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/max-count:",
        "range",
    ),
    (
        kindBlock(count="<max-count>1</max-count><max-size>-1</max-size>"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/max-size:",
        "range",
    ),
    (
        kindBlock(count="<max-size>1</max-size>"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/max-count: required element",
        "",
    ),
    (
        kindBlock(model="LIST"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/data-model: 'LIST' is not a data "
        "model",
        "",
    ),
    (
        kindBlock(policy="ANYONE"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/access-control:",
        "'ANYONE'",
    ),
    (
        kindBlock(policy="NODE-MULTIPLE"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/max-node-multiple:",
        "NODE-MULTIPLE",
    ),
    (
        kindBlock(policy="NODE-MULTIPLE", inner="<max-node-multiple>0</max-node-multiple>"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/max-node-multiple:",
        "range",
    ),
    (
        kindBlock(policy="USER-NODE-MATCH"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/access-control:",
        "DICTIONARY",
    ),
    (
        kindBlock(model="SINGLE", policy="USER-CHAIN-ACL"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/access-control:",
        "ARRAY",
    ),
    (
        kindBlock(identity='id="1" name="X"'),
        "",
        "configuration/required-kinds/kind-block/kind:",
        "exactly one",
    ),
    (kindBlock(identity=""), "", "configuration/required-kinds/kind-block/kind:", "exactly one"),
    (kindBlock(identity='id="0"'), "", "configuration/required-kinds/kind-block/kind@id:", "range"),
    (
        kindBlock(identity='id="x"'),
        "",
        "configuration/required-kinds/kind-block/kind@id:",
        "unsigned integer",
    ),
    (
        kindBlock(inner="<colour>red</colour>"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/colour: unexpected element",
        "",
    ),
    (
        "<required-kinds><kind-block><kind-signature>AAAA</kind-signature></kind-block>"
        "</required-kinds>",
        "",
        "configuration/required-kinds/kind-block/kind: required",
        "",
    ),
    (
        kindBlock().replace("</kind>", "</kind><kind-signature>@@@</kind-signature>"),
        "",
        "configuration/required-kinds/kind-block/kind-signature:",
        "base64",
    ),
    (kindBlock() + kindBlock(), "", "configuration/required-kinds: appears more than once", ""),
    (
        kindBlock().replace("</required-kinds>", "")
        + kindBlock(identity='id="4000000001"').replace("<required-kinds>", ""),
        "",
        "configuration/required-kinds: kind 4000000001 is defined twice",
        "",
    ),
    (
        kindBlock(identity='name="TURN-SERVICE"', model="SINGLE").replace("</required-kinds>", "")
        + kindBlock(identity='id="2"').replace("<required-kinds>", ""),
        "",
        "configuration/required-kinds: kind 2 is defined twice (also as TURN-SERVICE)",
        "",
    ),
    # usage extensions (RFC 7374, 7904, 7363, 7851, 8076)
    (
        kindBlock(inner="<redir:branching-factor>1</redir:branching-factor>"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/redir:branching-factor:",
        "2..",
    ),
    (
        "<redir:branching-factor>ten</redir:branching-factor>",
        "",
        "configuration/redir:branching-factor: 'ten' is not an unsigned integer",
        "",
    ),
    (
        "<redir:branching-factor>2</redir:branching-factor>"
        "<redir:branching-factor>3</redir:branching-factor>",
        "",
        "configuration/redir:branching-factor: appears more than once",
        "",
    ),
    (
        "<redir:starting-level>2</redir:starting-level>",
        "",
        "configuration/redir:starting-level: unknown element",
        "",
    ),
    (
        kindBlock(
            inner='<sip:domain-restriction enable="true"><sip:pattern>(</sip:pattern>'
            "</sip:domain-restriction>"
        ),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/sip:domain-restriction/"
        "sip:pattern:",
        "not a regular expression",
    ),
    (
        kindBlock(inner='<sip:domain-restriction enable="yes"/>'),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/sip:domain-restriction@enable:",
        "boolean",
    ),
    (
        '<sip:domain-restriction enable="true"/>',
        "",
        "configuration/sip:domain-restriction: not allowed in configuration",
        "",
    ),
    (
        "<st:number-of-peers-to-probe>-1</st:number-of-peers-to-probe>",
        "",
        "configuration/self-tuning:number-of-peers-to-probe:",
        "0..4294967295",
    ),
    (
        kindBlock(inner="<st:number-of-peers-to-probe>4</st:number-of-peers-to-probe>"),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/self-tuning:number-of-peers-to-"
        "probe: not allowed in a kind",
        "",
    ),
    (
        '<diag:diagnostic-kind kind="0xZZ"><diag:access-node>'
        + "00" * 16
        + "</diag:access-node></diag:diagnostic-kind>",
        "",
        "configuration/diagnostics:diagnostic-kind@kind:",
        "diagnostic Kind",
    ),
    (
        '<diag:diagnostic-kind kind="0x0003"><diag:access-node>abcd</diag:access-node>'
        "</diag:diagnostic-kind>",
        "",
        "configuration/diagnostics:diagnostic-kind/diagnostics:access-node:",
        "16-byte",
    ),
    (
        '<diag:diagnostic-kind kind="0x0003"/>',
        "",
        "configuration/diagnostics:diagnostic-kind/diagnostics:access-node:",
        "at least one",
    ),
    (
        '<diag:diagnostic-kind kind="0x3"><diag:access-node>'
        + "00" * 16
        + '</diag:access-node></diag:diagnostic-kind><diag:diagnostic-kind kind="0x3">'
        "<diag:access-node>" + "11" * 16 + "</diag:access-node></diag:diagnostic-kind>",
        "",
        "configuration/diagnostics:diagnostic-kind: kind 0x3 appears more than once",
        "",
    ),
    (
        kindBlock(
            model="DICTIONARY",
            policy="USER-CHAIN-ACL",
            inner='<share:variable-resource-names enable="true"><share:pattern>.*-conf'
            "</share:pattern></share:variable-resource-names>",
        ),
        "",
        "configuration/required-kinds/kind-block/kind[4000000001]/share:variable-resource-names/"
        "share:pattern:",
        "$USER and $DOMAIN",
    ),
]


@pytest.mark.parametrize(("body", "attributes", "start", "fragment"), CASES)
def test_validation_error_names_the_element(
    body: str, attributes: str, start: str, fragment: str
) -> None:
    error = refused(document(body, attributes))
    assert str(error).startswith(start)
    assert fragment in str(error)
    assert error.path is not None and str(error).startswith(error.path + ": ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<overlay xmlns="urn:example:other"/>', "{urn:example:other}overlay: the root element"),
        (f'<configs xmlns="{BASE}"/>'.encode(), "configs: the root element must be overlay"),
        (f'<overlay xmlns="{BASE}"/>'.encode(), "overlay: has no configuration element"),
        (
            f'<overlay xmlns="{BASE}"><configuration/></overlay>'.encode(),
            "configuration@instance-name: required attribute is missing",
        ),
        (
            f'<overlay xmlns="{BASE}"><configuration instance-name="not a name"/>'
            "</overlay>".encode(),
            "configuration@instance-name: 'not a name' is not a DNS name",
        ),
        (
            f'<overlay xmlns="{BASE}"><configuration instance-name="-x.org"/></overlay>'.encode(),
            "configuration@instance-name: '-x.org' is not a DNS name",
        ),
        (
            f'<overlay xmlns="{BASE}"><signature>AAAA</signature>'
            '<configuration instance-name="a.org"/></overlay>'.encode(),
            "overlay/signature: comes before any configuration",
        ),
        (
            f'<overlay xmlns="{BASE}"><configuration instance-name="a.org"/>'
            "<signature>AAAA</signature><signature>AAAA</signature></overlay>".encode(),
            "overlay/signature: a configuration has more than one signature",
        ),
        (
            f'<overlay xmlns="{BASE}"><configuration instance-name="a.org"/>'
            "<signature>A</signature></overlay>".encode(),
            "signature: 'A' is not valid base64",
        ),
        (
            f'<overlay xmlns="{BASE}"><configuration instance-name="a.org"/><extra/>'
            "</overlay>".encode(),
            "overlay/extra: unexpected element",
        ),
        (b"<overlay", "document: line 1, column 0: unclosed token"),
        (b"<overlay xmlns='" + BASE.encode() + b"'><x:y/></overlay>", "document: line 1"),
    ],
)
def test_document_level_errors(data: bytes, message: str) -> None:
    assert str(refused(data)).startswith(message)


def test_two_configurations_with_the_same_name_are_refused() -> None:
    twice = document(after='<configuration instance-name="overlay.example.org"/>')
    error = refused(twice, instanceName="overlay.example.org")
    assert str(error) == "overlay: has 2 configurations for 'overlay.example.org'"


def test_values_are_stripped_and_booleans_take_1_and_0() -> None:
    config = parseConfiguration(
        document(
            "<no-ice>\n 1 \n</no-ice><clients-permitted> 0</clients-permitted>"
            "<shared-secret> s3cret </shared-secret><max-message-size> +6000 </max-message-size>"
            "<bootstrap-node address=' peer.example.org '/>"
        )
    )
    assert config.noIce is True and config.clientsPermitted is False
    assert config.sharedSecret == "s3cret"
    assert config.maxMessageSize == 6000
    assert config.bootstrapNodes == (BootstrapNode("peer.example.org", 6084),)


def test_expiration_offsets_are_converted_to_utc() -> None:
    config = parseConfiguration(document(attributes=' expiration="2030-01-01T02:00:00.5+02:00"'))
    assert config.expiration == datetime(2030, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)


def test_extension_data_model_and_policy_accepted_when_registered() -> None:
    data = document(kindBlock(model="QUEUE", policy="OWNER"))
    assert "data-model" in str(refused(data))
    config = parseConfiguration(
        data, dataModels=frozenset({"QUEUE"}), accessPolicies=frozenset({"OWNER"})
    )
    assert (config.kinds[0].dataModel, config.kinds[0].accessControl) == ("QUEUE", "OWNER")


def test_unsupported_extension_namespaces_are_kept_not_judged() -> None:
    body = "<redir:branching-factor>1</redir:branching-factor><x:anything a='1'>t<y/></x:anything>"
    error = refused(document(body))
    assert str(error).startswith("configuration/redir:branching-factor")
    config = parseConfiguration(document(body), supportedExtensions=frozenset())
    assert [e.localName for e in config.extensions] == ["branching-factor", "anything"]
    data = writeConfiguration(config, supportedExtensions=frozenset())
    assert parseConfiguration(data, supportedExtensions=frozenset()) == config
    with pytest.raises(ConfigError, match=r"^cannot write: configuration/redir:branching-factor"):
        writeConfiguration(config)


# -- usage configuration elements ----------------------------------------------------------


def test_usage_accessors() -> None:
    node = "ab" * 16
    body = (
        "<st:number-of-peers-to-probe>6</st:number-of-peers-to-probe>"
        f'<diag:diagnostic-kind kind="0x000b"><diag:access-node>{node}</diag:access-node>'
        "</diag:diagnostic-kind>"
        + kindBlock(
            identity='name="REDIR"',
            model="DICTIONARY",
            policy="NODE-ID-MATCH",
            inner="<redir:branching-factor>4</redir:branching-factor>",
        ).replace("</required-kinds>", "")
        + kindBlock(
            identity='name="SIP-REGISTRATION"',
            model="DICTIONARY",
            policy="USER-NODE-MATCH",
            inner='<sip:domain-restrictions enable="true"><sip:pattern>dht\\.example\\.com'
            "</sip:pattern><sip:pattern>.*\\.my\\.example</sip:pattern></sip:domain-restrictions>",
        ).replace("<required-kinds>", "")
    )
    config = parseConfiguration(document(body))
    assert redirBranchingFactor(config) == 4
    assert selfTuningPeersToProbe(config) == 6
    assert diagnosticsAccess(config) == {0xB: frozenset({bytes.fromhex(node)})}
    restriction = sipDomainRestriction(config.kind("SIP-REGISTRATION"))
    assert restriction is not None and restriction.enable
    assert restriction.patterns == ("dht\\.example\\.com", ".*\\.my\\.example")
    assert parseConfiguration(writeConfiguration(config)) == config


def test_usage_defaults() -> None:
    config = defaultConfiguration()
    assert redirBranchingFactor(config) == 10
    assert selfTuningPeersToProbe(config) == 4
    assert diagnosticsAccess(config) == {}
    assert sipDomainRestriction(config.kind("SIP-REGISTRATION")) is None
    assert shareVariableResourceNames(None) is None


def test_share_variable_resource_names() -> None:
    inner = (
        '<share:variable-resource-names enable="true"><share:pattern>.*-conf-$USER@$DOMAIN'
        "</share:pattern></share:variable-resource-names>"
    )
    config = parseConfiguration(document(kindBlock(inner, policy="USER-CHAIN-ACL")))
    names = shareVariableResourceNames(config.kinds[0])
    assert names is not None and names.enable and names.patterns == (".*-conf-$USER@$DOMAIN",)


def test_redir_branching_factor_at_configuration_level() -> None:
    config = parseConfiguration(document("<redir:branching-factor>3</redir:branching-factor>"))
    assert redirBranchingFactor(config) == 3


# -- unsafe and oversized XML --------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><!DOCTYPE overlay><overlay/>',
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b"<overlay>&lol2;</overlay>",
        b'<!doctype x SYSTEM "file:///etc/passwd"><overlay/>',
        b"<overlay><!ENTITY x 'y'></overlay>",
    ],
)
def test_doctype_and_entities_are_refused(data: bytes) -> None:
    error = refused(data)
    assert str(error).startswith("document: DOCTYPE and entity declarations are refused")


def test_huge_document_is_refused() -> None:
    padding = b"<!-- " + b"x" * (1 << 20) + b" -->"
    error = refused(document().replace(b"</overlay>", padding + b"</overlay>"))
    assert str(error).startswith("document: ") and "1048576-byte limit" in str(error)
    assert "limit" in str(refused(document(), maxSize=100))


def test_deep_nesting_is_refused() -> None:
    deep = "<x:a>" * 100 + "</x:a>" * 100
    assert "nested deeper" in str(refused(document(deep)))


def test_encodings_other_than_utf8_are_refused() -> None:
    latin1 = document("<shared-secret>caf\xe9</shared-secret>").decode().encode("latin-1")
    assert "not UTF-8" in str(refused(latin1))
    declared = document().replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"')
    assert "encoding 'ISO-8859-1' is not UTF-8" in str(refused(declared))
    assert "not UTF-8" in str(refused(document().decode().encode("utf-16")))


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(ConfigError):
        parseConfiguration("<overlay/>")  # type: ignore[arg-type]


# -- sequence numbers (section 6.3.2.1) and ConfigUpdate (section 6.5.4) ---------------------


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        (1, 0, True),
        (0, 1, False),
        (5, 5, False),
        (0, 65534, True),  # wraps from 65534 to 0
        (65534, 0, False),
        (3, 65530, True),
        (32767, 0, True),  # the last number in the forward half
        (32768, 0, False),
        (0, 32768, True),
    ],
)
def test_is_newer_modulo_65535(new: int, old: int, expected: bool) -> None:
    assert isNewer(new, old) is expected


@pytest.mark.parametrize(("new", "old"), [(65535, 0), (0, 65535), (-1, 0), (70000, 1)])
def test_65535_and_out_of_range_are_not_sequence_numbers(new: int, old: int) -> None:
    with pytest.raises(ConfigError, match=r"^configuration/sequence: "):
        isNewer(new, old)


@given(st.integers(0, 65534), st.integers(0, 65534))
def test_sequence_comparison_is_antisymmetric(a: int, b: int) -> None:
    assert compareSequence(a, b) == -compareSequence(b, a)
    assert (compareSequence(a, b) == 0) == (a == b)


def test_replace_takes_only_a_newer_configuration() -> None:
    current = OverlayConfiguration(instanceName="a.example", sequence=65534)
    newer = OverlayConfiguration(instanceName="a.example", sequence=0)
    assert replace(current, newer) is newer
    assert isNewer(newer, current)
    with pytest.raises(ConfigError) as info:
        replace(newer, current)
    assert str(info.value) == "configuration/sequence: 65534 is not newer than 0"
    with pytest.raises(ConfigError, match="configuration/sequence: 0 is not newer than 0"):
        replace(newer, newer)
    with pytest.raises(ConfigError, match=r"^configuration@instance-name: 'b.example'"):
        replace(current, OverlayConfiguration(instanceName="b.example", sequence=1))


# -- ConfigUpdate kind blocks (section 6.5.4.1) --------------------------------------------


def test_parse_kind_blocks_of_a_config_update() -> None:
    blocks = (
        b'<kind-block><kind id="4000000002"><data-model>DICTIONARY</data-model>'
        b"<access-control>USER-NODE-MATCH</access-control><max-count>3</max-count>"
        b"<max-size>50</max-size></kind><kind-signature algorithm='rsa-sha1'>AAAA"
        b'</kind-signature></kind-block>\n<kind-block><kind name="REDIR">'
        b"<data-model>DICTIONARY</data-model><access-control>NODE-ID-MATCH</access-control>"
        b"<max-count>10</max-count><max-size>200</max-size></kind></kind-block>"
    )
    first, redir = parseKindBlocks(blocks)
    assert first.kindId == 4000000002 and first.kindSignature == b"\0\0\0"
    assert first.kindSignatureAlgorithm == "rsa-sha1"
    assert first.rawElement is not None and first.rawElement.startswith(b'<kind id="4000000002">')
    assert first.rawElement.endswith(b"</kind>") and first.rawElement in blocks
    assert redir.effectiveId == 0x104
    with pytest.raises(ConfigError, match=r"^kind-blocks: no kind-block"):
        parseKindBlocks(b"")
    with pytest.raises(ConfigError, match="DOCTYPE"):
        parseKindBlocks(b"<!DOCTYPE x>")


# -- extensions -----------------------------------------------------------------------------


def test_extensions_compare_by_meaning_not_by_prefix() -> None:
    a = Extension('<p:e xmlns:p="urn:example:a" z="1" y="2">t<p:c/></p:e>')
    b = Extension('<q:e xmlns:q="urn:example:a" y="2" z="1">t<q:c></q:c></q:e>')
    assert a == b and hash(a) == hash(b)
    assert a.namespace == "urn:example:a" and a.localName == "e"
    element = a.element()
    element.text = "changed"
    assert a.element().text == "t"
    with pytest.raises(ConfigError, match="foreign namespace"):
        Extension(f'<no-ice xmlns="{BASE}">true</no-ice>')
    with pytest.raises(ConfigError, match="foreign namespace"):
        Extension("<plain/>")


def test_extension_with_unqualified_children_survives_the_default_namespace() -> None:
    extension = Extension('<p:e xmlns:p="urn:example:a"><inner>1</inner></p:e>')
    config = OverlayConfiguration(instanceName="a.example", extensions=(extension,))
    again = parseConfiguration(writeConfiguration(config))
    assert again == config
    assert again.extensions[0].element()[0].tag == "inner"


# -- writing --------------------------------------------------------------------------------


def test_writer_refuses_what_would_not_read_back() -> None:
    base = defaultConfiguration()
    with pytest.raises(ConfigError, match=r"^cannot write: configuration/shared-secret"):
        writeConfiguration(dataclassReplace(base, sharedSecret=" padded "))
    with pytest.raises(ConfigError, match="U\\+0001"):
        writeConfiguration(dataclassReplace(base, sharedSecret="a\x01b"))
    with pytest.raises(ConfigError, match="self-signed-permitted@digest"):
        writeConfiguration(dataclassReplace(base, selfSignedDigest=None))
    with pytest.raises(ConfigError, match="max-message-size"):
        writeConfiguration(dataclassReplace(base, maxMessageSize=10))
    with pytest.raises(ConfigError, match="has 2 configurations"):
        writeConfiguration([base, base])
    with pytest.raises(ConfigError, match="at least one"):
        writeConfiguration([])


def test_written_document_keeps_characters_that_need_escaping() -> None:
    config = dataclassReplace(
        defaultConfiguration(),
        sharedSecret="<&>\"' \r\n\tcaf\xe9 \U0001f600",
        extensionAttributes=(("{urn:example:a}note", ' tab\tnew\nline "q" '),),
    )
    assert parseConfiguration(writeConfiguration(config)) == config


def test_xml_namespace_attribute_on_configuration_round_trips() -> None:
    config = parseConfiguration(document(attributes=' xml:lang="en"'))
    assert config.extensionAttributes == (("{http://www.w3.org/XML/1998/namespace}lang", "en"),)
    assert parseConfiguration(writeConfiguration(config)) == config


def test_empty_link_protocols_mean_tls() -> None:
    config = OverlayConfiguration(instanceName="a.example", overlayLinkProtocols=())
    assert config.overlayLinkProtocols == ("TLS",)


# -- round trip of generated configurations ------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
dnsNames = st.lists(_label, min_size=1, max_size=4).map(".".join)
tokens = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=12
)
hexIds = st.binary(min_size=1, max_size=20).map(bytes.hex)
hostNames = st.lists(_label, max_size=3).map(lambda labels: ".".join([*labels, "example"]))
addresses = st.one_of(st.ip_addresses().map(str), hostNames)
urls = st.builds(
    lambda h, p: f"https://{h}/{p}", dnsNames, st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True)
)


@st.composite
def extensions(draw: st.DrawFn) -> Extension:
    n = draw(st.integers(1, 3))
    local = draw(st.sampled_from(["a", "b-c", "d.e"]))
    text = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8))
    attr = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=5))
    element = (
        f'<e:{local} xmlns:e="urn:example:{n}" e:k="{_escape(attr)}">{_escape(text)}</e:{local}>'
    )
    return Extension(element)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


@st.composite
def kindConfigs(draw: st.DrawFn, identity: int | str) -> KindConfig:
    model, policy = draw(
        st.sampled_from(
            [
                ("SINGLE", "USER-MATCH"),
                ("ARRAY", "NODE-MATCH"),
                ("DICTIONARY", "USER-NODE-MATCH"),
                ("SINGLE", "NODE-MULTIPLE"),
                ("DICTIONARY", "NODE-ID-MATCH"),
                ("ARRAY", "USER-CHAIN-ACL"),
            ]
        )
    )
    multiple = draw(st.integers(1, 2**31 - 1)) if policy == "NODE-MULTIPLE" else None
    signature = draw(st.none() | st.binary(min_size=1, max_size=80))
    return KindConfig(
        kindId=identity if isinstance(identity, int) else None,
        name=identity if isinstance(identity, str) else None,
        maxCount=draw(st.integers(1, 2**31 - 1)),
        maxSize=draw(st.integers(1, 2**31 - 1)),
        maxNodeMultiple=multiple,
        dataModel=model,
        accessControl=policy,
        kindSignature=signature,
        kindSignatureAlgorithm=None if signature is None else draw(st.none() | st.just("rsa-sha1")),
        extensions=tuple(draw(st.lists(extensions(), max_size=2))),
    )


@st.composite
def kindLists(draw: st.DrawFn) -> tuple[KindConfig, ...]:
    ids = draw(st.lists(st.integers(0xF0000001, 0xFFFFFFFE), max_size=3, unique=True))
    names = draw(st.lists(st.sampled_from(["TURN-SERVICE", "X-PRIVATE"]), max_size=2, unique=True))
    identities: list[int | str] = [*ids, *names]
    return tuple(draw(kindConfigs(identity)) for identity in identities)


@st.composite
def configurations(draw: st.DrawFn) -> OverlayConfiguration:
    selfSigned = draw(st.booleans())
    digest = "sha1" if selfSigned else draw(st.none() | st.sampled_from(["sha1", "sha256"]))

    def optionalInt(low: int, high: int) -> int | None:
        return draw(st.none() | st.integers(low, high))

    return OverlayConfiguration(
        instanceName=draw(dnsNames),
        sequence=draw(st.integers(0, 65534)),
        expiration=draw(st.none() | st.datetimes(timezones=st.just(UTC))),
        topologyPlugin=draw(tokens),
        nodeIdLength=draw(st.integers(16, 20)),
        maxMessageSize=draw(st.integers(39, 2**32 - 1)),
        initialTtl=draw(st.integers(1, 255)),
        rootCerts=tuple(draw(st.lists(st.binary(min_size=1, max_size=100), max_size=2))),
        enrollmentServers=tuple(draw(st.lists(urls, max_size=2))),
        selfSignedPermitted=selfSigned,
        selfSignedDigest=digest,
        bootstrapNodes=tuple(
            draw(st.lists(st.builds(BootstrapNode, addresses, st.integers(1, 65535)), max_size=3))
        ),
        noIce=draw(st.booleans()),
        sharedSecret=draw(st.none() | tokens),
        overlayLinkProtocols=tuple(draw(st.lists(tokens, min_size=1, max_size=2))),
        clientsPermitted=draw(st.booleans()),
        turnDensity=optionalInt(0, 255),
        mandatoryExtensions=tuple(
            draw(st.lists(st.sampled_from(sorted(SUPPORTED_EXTENSIONS)), max_size=2))
        ),
        kinds=draw(kindLists()),
        kindSigners=tuple(draw(st.lists(hexIds, max_size=2))),
        configurationSigners=tuple(draw(st.lists(hexIds, max_size=2))),
        badNodes=tuple(draw(st.lists(hexIds, max_size=2))),
        chordPingInterval=optionalInt(1, 2**31 - 1),
        chordUpdateInterval=optionalInt(1, 2**31 - 1),
        chordReactive=draw(st.none() | st.booleans()),
        overlayReliabilityTimer=optionalInt(200, 2**31 - 1),
        extensions=tuple(draw(st.lists(extensions(), max_size=3))),
        extensionAttributes=tuple(
            draw(
                st.dictionaries(st.sampled_from(["{urn:example:1}a", "{urn:other}b"]), tokens)
            ).items()
        ),
        signature=draw(st.none() | st.binary(min_size=1, max_size=200)),
        signatureAlgorithm=None,
    )


@settings(max_examples=150, deadline=None)
@given(configurations())
def test_generated_configurations_round_trip(config: OverlayConfiguration) -> None:
    data = writeConfiguration(config)
    again = parseConfiguration(data)
    assert again == config
    assert again.rawElement == signedBytes(config)
    assert writeConfiguration(again) == data


@settings(max_examples=30, deadline=None)
@given(st.lists(configurations(), min_size=2, max_size=3, unique_by=lambda c: c.instanceName))
def test_documents_with_several_configurations_round_trip(
    configs: list[OverlayConfiguration],
) -> None:
    data = writeConfiguration(configs)
    for config in configs:
        assert parseConfiguration(data, config.instanceName) == config
