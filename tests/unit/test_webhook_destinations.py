"""Where webhooks may go: never to link-local or cloud metadata addresses, to private and
loopback ones only where allowed, judged on the addresses a name resolves to."""

from collections.abc import Sequence

import pytest

from hitl.checkpoints.errors import WebhookError
from hitl.service.webhooks import ALLOW_PRIVATE_SETTING, Destinations

NAMES = {
    "hooks.example.com": ["93.184.215.14"],
    "localhost": ["127.0.0.1", "::1"],
    "sneaky.example.com": ["93.184.215.14", "169.254.169.254"],  # one bad answer is enough
    "intranet.example.com": ["10.1.2.3"],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
}


def resolve(host: str, port: int) -> Sequence[str]:
    """A DNS of fixed answers; an address resolves to itself, as with getaddrinfo."""
    return NAMES.get(host, [host.strip("[]")])


def destinations(*, allow_private: bool) -> Destinations:
    return Destinations(allow_private=allow_private, resolve=resolve)


NEVER = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a9fe:a9fe]/hook",  # NAT64, local-use prefix
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of it
    "http://[::a9fe:a9fe]/hook",  # IPv4-compatible
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./computeMetadata/v1/",
    "https://sneaky.example.com/hook",
]
PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.0.0.7/hook",
    "http://192.168.1.20/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",
    "http://[::1]/hook",
    "http://0.0.0.0/hook",
    "https://intranet.example.com/hook",
    "http://[64:ff9b::a01:203]/hook",  # NAT64 of 10.1.2.3
    "http://[fec0::1]/hook",  # site-local
]


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", NEVER)
def test_link_local_and_metadata_addresses_are_refused_even_where_private_ones_are_allowed(
    url: str, allow_private: bool
) -> None:
    with pytest.raises(WebhookError, match="metadata"):
        destinations(allow_private=allow_private).check(url)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_and_loopback_addresses_are_refused_unless_the_setting_allows_them(
    url: str,
) -> None:
    with pytest.raises(WebhookError, match=f"set {ALLOW_PRIVATE_SETTING}=1"):
        destinations(allow_private=False).check(url)
    assert destinations(allow_private=True).check(url)


def test_a_public_address_is_sent_to_by_address_with_the_urls_own_host_name() -> None:
    target = destinations(allow_private=False).target("https://hooks.example.com:8443/h?x=1")
    v6 = destinations(allow_private=False).target("http://v6.example.com/h")

    assert (target.url, target.host) == (
        "https://93.184.215.14:8443/h?x=1",
        "hooks.example.com:8443",
    )
    assert (v6.url, v6.host) == ("http://[2606:2800:220:1:248:1893:25c8:1946]/h", "v6.example.com")


def test_a_name_that_does_not_resolve_may_be_added_but_is_not_sent_to() -> None:
    def nowhere(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    offline = Destinations(resolve=nowhere)

    assert offline.check("https://not-yet.example.com/h", unresolved_ok=True) == []
    with pytest.raises(WebhookError, match="cannot resolve"):
        offline.target("https://not-yet.example.com/h")


def test_the_setting_is_read_from_the_environment_given() -> None:
    assert Destinations.from_env({ALLOW_PRIVATE_SETTING: "1"}).allow_private
    assert not Destinations.from_env({ALLOW_PRIVATE_SETTING: "0"}).allow_private
    assert not Destinations.from_env({}).allow_private


def test_a_user_and_password_in_the_url_are_kept_for_the_delivery() -> None:
    target = destinations(allow_private=False).target("https://u:p@hooks.example.com:8443/h")
    assert (target.url, target.host) == (
        "https://u:p@93.184.215.14:8443/h",
        "hooks.example.com:8443",
    )
