"""A throwaway CA and a loopback certificate: Runflow's JS SDK refuses upload URLs that are not https."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


class Tls:
    """The server's SSL context and the CA certificate as a PEM file for clients; close() deletes it."""

    def __init__(self, host: str):
        import trustme  # the optional tls extra; only an emulator serving https needs it

        ca = trustme.CA(organization_name="runflow-bg emulator")
        names = LOOPBACK_NAMES if host in LOOPBACK_NAMES else (*LOOPBACK_NAMES, host)
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(*names).configure_cert(self.server_context)
        # What the emulator's own requests trust: the usual CAs, and this one for URLs of itself.
        self.client_context = ssl.create_default_context()
        ca.configure_trust(self.client_context)
        self._dir = tempfile.TemporaryDirectory(prefix="runflow-emulator-ca-")
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)

    def close(self) -> None:
        self._dir.cleanup()
