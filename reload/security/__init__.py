"""Security for RELOAD (RFC 6940 sections 11.3, 13): keys, certificates,
the trust decision, TLS contexts for overlay links, and signatures.

One job per module:

- :mod:`~reload.security.keys`: ECDSA P-256 and RSA-2048 keys, PEM files.
- :mod:`~reload.security.certificates`: reload URIs (section 14.15),
  self-signed Node-IDs (section 11.3.1), issuing certificates (section
  11.3), :class:`~reload.security.certificates.PeerIdentity`.
- :mod:`~reload.security.trust`: :class:`~reload.security.trust.TrustPolicy`,
  the one decision whether a certificate is acceptable.
- :mod:`~reload.security.tls`: pyOpenSSL contexts and Twisted connection
  creators for overlay links, with one verify callback.
- :mod:`~reload.security.signing`: message (section 6.3.4) and stored data
  (section 7.1) signatures, and the certificate cache signers are found in.
"""
