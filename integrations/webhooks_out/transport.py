"""One HTTP POST to a checked webhook target, at the address the SSRF guard approved.

``requests`` would resolve the host name again when it connects, and a DNS answer that changed
in between (DNS rebinding) would send us somewhere the guard never saw. So the request goes
through urllib3 straight to an IP address from ``Target.addresses``, while the ``Host`` header,
the TLS SNI name (``server_hostname``) and the certificate check (``assert_hostname``) all use
the URL's host name, exactly as if we had connected by name. Redirects are returned, never
followed here (see ``delivery``); the response body is read only as far as the excerpt needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import certifi
import urllib3
from django.conf import settings
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from integrations.webhooks_out.ssrf import Target

EXCERPT_CHARS = 500
# Enough bytes for a 500-character excerpt of any UTF-8 body; the rest is never read.
_READ_BYTES = EXCERPT_CHARS * 4


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    location: str | None
    excerpt: str  # the start of the body; headers are never kept


class TransportError(Exception):
    """No HTTP answer: a timeout, a refused or dropped connection, a TLS failure."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def _pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    options = {
        "port": target.port,
        "timeout": urllib3.Timeout(total=timeout),
        "retries": False,
        "maxsize": 1,
    }
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.WEBHOOKS_CA_BUNDLE or certifi.where(),
            **options,
        )
    return urllib3.HTTPConnectionPool(address, **options)


def _excerpt(response: urllib3.BaseHTTPResponse) -> str:
    try:
        data = response.read(_READ_BYTES, decode_content=True)
    except HTTPError:
        return ""  # the status is what matters; a body cut short is not worth a retry
    return data.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``target``, trying its checked addresses in order until one connects."""
    headers = {**headers, "Host": target.host_header}
    last_error = "no address to connect to"
    for address in target.addresses:
        pool = _pool(target, address, timeout)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                release_conn=False,
            )
            try:
                return Answer(
                    status=response.status,
                    retry_after=response.headers.get("Retry-After"),
                    location=response.headers.get("Location"),
                    excerpt=_excerpt(response),
                )
            finally:
                # Closed, not drained: an endless or slow body must not hold the worker.
                response.close()
        except NewConnectionError:
            # Refused or unreachable at this address: the next checked address may answer.
            last_error = f"could not connect to {target.host_header}"
            continue
        except SSLError:
            raise TransportError(f"the TLS handshake with {target.host_header} failed") from None
        except Urllib3Timeout:
            raise TransportError(f"{target.host_header} did not answer within {timeout:g} s", timeout=True) from None
        except (ProtocolError, HTTPError, OSError):
            raise TransportError(f"the connection to {target.host_header} was dropped before an answer") from None
        finally:
            pool.close()
    raise TransportError(last_error)
