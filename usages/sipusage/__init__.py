"""The parts of the SIP usage (RFC 7904) behind ``usages/sip.py``: the
SipRegistration record and its Kind, resolution, the SIP message layer, the
AppAttach connections and the front end phones talk to."""
