"""The SSRF guard: what outgoing webhooks refuse to call, by URL and by DNS answer.

Public-looking answers come from ``fake_dns`` (made-up .test names); those addresses are only
checked here, never contacted.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from integrations.webhooks_out import ssrf

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.10.20", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("198.51.100.7", "special-purpose"),  # documentation range (TEST-NET-2)
    ("::ffff:127.0.0.1", "IPv6 form of 127.0.0.1, a loopback"),
    ("::ffff:10.0.0.1", "IPv6 form of 10.0.0.1, a private"),
    ("64:ff9b::7f00:1", "IPv6 form of 127.0.0.1"),  # NAT64
    ("2002:a00:1::", "IPv6 form of 10.0.0.1"),  # 6to4
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
]


@pytest.mark.parametrize(("address", "words"), REFUSED_ADDRESSES)
def test_a_host_resolving_to_a_refused_address_is_refused(fake_dns, address, words):
    fake_dns({"hooks.customer.test": [address]})

    with pytest.raises(ssrf.TargetRefused, match=words) as refused:
        ssrf.check_url("https://hooks.customer.test/in")

    assert f"hooks.customer.test resolves to {address}" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://0.0.0.0:80/",
        "http://2130706433/",  # 127.0.0.1 as one number: resolvers accept it
        "http://127.1/",
        "http://0x7f.0.0.1/",
    ],
)
def test_address_literals_in_every_spelling_are_refused(url):
    with pytest.raises(ssrf.TargetRefused):
        ssrf.check_url(url)


def test_localhost_is_refused_by_its_dns_answer():
    with pytest.raises(ssrf.TargetRefused, match=r"localhost resolves to .* loopback"):
        ssrf.check_url("http://localhost:9000/hook")


def test_one_private_answer_among_public_ones_is_enough_to_refuse(fake_dns):
    fake_dns({"rebind.customer.test": [PUBLIC_V4, "127.0.0.1"]})

    with pytest.raises(ssrf.TargetRefused, match=re.escape("127.0.0.1")):
        ssrf.check_url("https://rebind.customer.test/hook")


def test_a_public_host_is_accepted_with_every_address_to_connect_to(fake_dns):
    fake_dns({"hooks.customer.test": [PUBLIC_V4, PUBLIC_V6]})

    target = ssrf.check_url("https://Hooks.Customer.test./catch/1?x=2")

    assert target.host == "hooks.customer.test"
    assert target.addresses == (PUBLIC_V4, PUBLIC_V6)
    assert (target.scheme, target.port, target.path) == ("https", 443, "/catch/1?x=2")
    assert target.host_header == "hooks.customer.test"


def test_the_host_header_keeps_a_non_default_port(fake_dns):
    fake_dns({"hooks.customer.test": [PUBLIC_V4]})

    assert ssrf.check_url("http://hooks.customer.test:8443/").host_header == "hooks.customer.test:8443"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://hooks.customer.test/x", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("gopher://hooks.customer.test:70/", "only http:// and https://"),
        ("https://user:pass@hooks.customer.test/x", "user name or password"),
        ("https://token@hooks.customer.test/x", "user name or password"),
        ("https:///no-host", "no host"),
        ("https://hooks.customer.test:99999/", "malformed"),
        ("https://hooks.customer.test/" + "x" * 2000, "longer than"),
    ],
)
def test_urls_that_are_not_plain_http_targets_are_refused(fake_dns, url, words):
    fake_dns({"hooks.customer.test": [PUBLIC_V4]})

    with pytest.raises(ssrf.TargetRefused, match=words):
        ssrf.check_url(url)


@pytest.mark.parametrize("host", ["metadata.google.internal", "metadata.google.internal.", "METADATA.goog"])
def test_metadata_names_are_refused_without_being_resolved(host):
    with pytest.raises(ssrf.TargetRefused, match="cloud metadata"):
        ssrf.check_url(f"http://{host}/computeMetadata/v1/")


@override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True)
def test_the_setting_allows_private_and_loopback_targets():
    assert ssrf.check_url("http://127.0.0.1:8080/hook").addresses == ("127.0.0.1",)
    assert ssrf.check_url("http://10.0.0.8/hook").addresses == ("10.0.0.8",)


@override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True)
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
    ],
)
def test_metadata_stays_refused_even_with_the_setting_on(url):
    with pytest.raises(ssrf.TargetRefused, match="metadata"):
        ssrf.check_url(url)


def test_a_name_that_does_not_resolve_is_unresolvable_not_refused():
    with pytest.raises(ssrf.TargetUnresolvable, match="could not be resolved"):
        ssrf.check_url("https://no-such-host.invalid/hook")


def test_a_refusal_never_repeats_the_urls_path_or_query(fake_dns):
    fake_dns({"hook.eu1.make.test": ["10.9.8.7"]})

    with pytest.raises(ssrf.TargetRefused) as refused:
        ssrf.check_url("https://hook.eu1.make.test/s3cr3t-path-token?key=abc123")

    assert "s3cr3t" not in str(refused.value) and "abc123" not in str(refused.value)
