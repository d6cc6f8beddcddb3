"""HTTPS: the HAProxy container's certificate folder, and automatic certificates (ACME,
RFC 8555) for services that opt in.

* ``vault``: what a fleet shares, kept as records of the registry's store: the ACME account
  key (so every host's HAProxy answers challenges with the same thumbprint), one lease per
  name (one host orders, the others wait), and the issued certificates.
* ``client``: the protocol, through certbot's ``acme`` package (imported only when ACME is
  on). HTTP-01 is answered by HAProxy itself: the config returns ``<token>.<thumbprint>``
  (``compiler.tls.acme_challenge_rule``), so the client only tells the CA it is ready.
* ``manager``: when to order or renew each name (a third of the lifetime left), backoff
  after failures (respecting ``Retry-After``), on a thread of its own.
* ``certfolder``: the folder's listing, and the certificates written into it.
* ``policy``: what HTTPS adds to a pass (``Https``): which names need a certificate,
  services kept on HTTP until theirs arrives, the folder filled before a reload.

Key material never reaches a log line or the config text; on disk it is mode 0600.
"""
