"""The SSRF guard: which URLs outgoing webhooks may call, and the addresses to call them at.

A webhook URL is chosen by a customer (or by whoever holds an API key), and our servers call it.
Without a guard, ``http://169.254.169.254/latest/meta-data/`` would read the cloud's credentials
and ``http://10.0.0.5:6379/`` would poke an internal service (OWASP SSRF Prevention Cheat Sheet:
https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html).

- Only ``http``/``https``; no user name or password in the URL.
- The host is resolved and **every** answer is checked: a name that resolves to one public and
  one private address is refused, so round-robin answers cannot smuggle a private one in.
- Refused: private, loopback, link-local, multicast, reserved, unspecified, carrier-grade NAT
  (100.64.0.0/10), anything else that is not globally routable, and IPv6 forms that embed an
  IPv4 address (IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) whose
  IPv4 address is refused. ``WEBHOOKS_ALLOW_PRIVATE_TARGETS`` lifts these for on-premises
  receivers and local development.
- Cloud metadata endpoints are refused always, setting or not: no receiver lives there, and
  they are the prize of every SSRF.
- The caller connects to the addresses returned in ``Target.addresses`` (never resolving the
  name again), so a DNS answer that changes between check and connect (DNS rebinding) cannot
  redirect the request. Redirects are not followed by the HTTP client; the delivery code checks
  each ``Location`` with ``check_url`` as if it were a new target.

Refusal messages name the host and the address class but never the URL's path or query, which
for Zapier and Make hooks is itself a secret.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2000
ALLOWED_SCHEMES = {"http": 80, "https": 443}

# Instance metadata services: AWS/Azure/GCP/OpenStack 169.254.169.254, AWS IPv6, AWS ECS task
# metadata, Alibaba Cloud, Oracle Cloud; and the names GCP and AWS give them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192")
)
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(Exception):
    """The URL may not be called. The message says why in words fit for its owner (and for logs)."""


class TargetUnresolvable(Exception):
    """The host name has no address right now (DNS failure): worth trying again later."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses it may be called at."""

    url: str
    scheme: str
    host: str  # lower case, IDNA-encoded, without IPv6 brackets
    port: int
    addresses: tuple[str, ...]  # every address the host resolved to, all of them checked
    path: str  # path and query, what goes on the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == ALLOWED_SCHEMES[self.scheme] else f"{host}:{self.port}"


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address, which is where it would go."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and ip in NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return embedded


def is_metadata(ip: IPAddress) -> bool:
    embedded = _embedded_ipv4(ip)
    return ip in METADATA_ADDRESSES or (embedded is not None and embedded in METADATA_ADDRESSES)


def address_class(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address ("a loopback address"…), or None when it is."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = address_class(embedded)
        return f"an IPv6 form of {embedded}, {inner}" if inner else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        # Python's is_private follows IANA's special-purpose registries: RFC 1918, ULA, benchmarking,
        # documentation ranges and more; none of them is a receiver on the internet.
        return "a private or special-purpose address"
    if not ip.is_global:
        return "not a public address"
    return None


def _show(ip: IPAddress) -> str:
    """The address as people write it (Python 3.11 prints ::ffff:7f00:1 for ::ffff:127.0.0.1)."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped is not None else str(ip)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normalise_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host:
        raise TargetRefused("the URL has no host name")
    if _literal(host) is not None:
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise TargetRefused("the host name is not a valid domain name") from None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        raise TargetUnresolvable(f"the host name {host} could not be resolved") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in answers:
        # An IPv6 answer may carry a zone ("fe80::1%eth0"); the address class is what matters.
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise TargetUnresolvable(f"the host name {host} has no address")
    return addresses


def check_url(url: str) -> Target:
    """Check ``url`` and resolve its host. Raises TargetRefused or TargetUnresolvable."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise TargetRefused("the URL is malformed (check the host and port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise TargetRefused("only http:// and https:// URLs can receive webhooks")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL must not contain a user name or password; use a secret path or the signature")
    if not parts.hostname:
        raise TargetRefused("the URL has no host name")
    host = _normalise_host(parts.hostname)
    port = port or ALLOWED_SCHEMES[scheme]
    if host in METADATA_HOSTS:
        raise TargetRefused(f"{host} is a cloud metadata service")
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS
    addresses = _resolve(host, port)
    for ip in addresses:
        reason = address_class(ip)
        if reason is None or (allow_private and not is_metadata(ip)):
            continue
        subject = _show(ip) if _literal(host) == ip else f"{host} resolves to {_show(ip)}, which"
        raise TargetRefused(f"{subject} is {reason}; webhooks are only sent to public addresses")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        url=url.strip(),
        scheme=scheme,
        host=host,
        port=port,
        addresses=tuple(str(ip) for ip in addresses),
        path=path,
    )
