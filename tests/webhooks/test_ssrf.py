"""I7: the server refuses to send requests to internal addresses, at creation and at every send."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from mercato.kit import ssrf
from tests.support.receivers import Receiver
from tests.webhooks.support import Driver, World


@pytest.fixture
def allowed_hosts() -> list[str]:
    """No allowlist here: the store as deployed."""
    return []


REFUSED_URLS = [
    pytest.param("http://127.0.0.1:8080/hook", id="loopback"),
    pytest.param("http://10.0.0.1/hook", id="private"),
    pytest.param("http://192.168.1.10/hook", id="private-192"),
    pytest.param("http://169.254.169.254/latest/meta-data/", id="cloud-metadata"),
    pytest.param("http://[::1]/hook", id="ipv6-loopback"),
    pytest.param("http://[::ffff:127.0.0.1]/hook", id="ipv4-mapped-loopback"),
    pytest.param("http://[fd00::1]/hook", id="ipv6-unique-local"),
    pytest.param("http://0.0.0.0/hook", id="unspecified"),
    pytest.param("http://100.100.100.200/hook", id="shared-address-space"),
    pytest.param("http://0x7f.1/hook", id="odd-ipv4-notation"),
    pytest.param("http://localhost/hook", id="name-resolving-to-loopback"),
    pytest.param("ftp://example.com/hook", id="ftp-scheme"),
    pytest.param("file:///etc/passwd", id="file-scheme"),
    pytest.param("http:///hook", id="no-host"),
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_internal_or_non_http_urls_are_refused_at_creation(world: World, url: str) -> None:
    response = await world.create(url)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "url_not_allowed"


async def test_urls_longer_than_2000_characters_are_refused(world: World) -> None:
    response = await world.create("https://example.com/" + "a" * 2000)
    assert response.status_code == 422


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254",
                                     "224.0.0.1", "240.0.0.1", "0.0.0.0", "100.64.0.1", "::1", "::",
                                     "fe80::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
                                     "2002:7f00:1::1", "64:ff9b::a00:1"])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert ssrf.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "::ffff:93.184.215.14"])
def test_public_addresses_pass(address: str) -> None:
    assert ssrf.refusal(ipaddress.ip_address(address)) is None


async def test_allowed_hosts_bypass_the_address_check_but_are_still_pinned() -> None:
    target = await ssrf.resolve("https://localhost:8443/hook?x=1", allowed_hosts=["LOCALHOST"])
    url, headers, extensions = target.pinned()
    assert ipaddress.ip_address(url.host).is_loopback
    assert headers == {"Host": "localhost:8443"}
    assert extensions == {"sni_hostname": "localhost"}
    with pytest.raises(ssrf.UrlNotAllowed):
        await ssrf.resolve("https://localhost:8443/hook", allowed_hosts=["127.0.0.1"])


async def test_the_guard_runs_again_at_send_time(world: World, receiver: Receiver, driver: Driver) -> None:
    """A URL accepted when the allowlist held its host is refused once it does not: nothing is sent."""
    allowing = driver.runtime.settings.model_copy(update={"outbound_allowed_hosts": ["127.0.0.1"]})
    driver.runtime.settings.outbound_allowed_hosts = ["127.0.0.1"]
    try:
        assert (await world.create(receiver.url())).status_code == 201
    finally:
        driver.runtime.settings.outbound_allowed_hosts = []
    await world.touch()
    await driver.fan_out()
    assert await driver.send() == 1
    [delivery] = await driver.deliveries()
    assert receiver.requests == []
    assert delivery.state == "pending" and delivery.last_status_code is None
    assert delivery.last_error is not None and delivery.last_error.startswith("refused")
    assert await driver.send(later=timedelta(days=1), settings=allowing) == 1
    assert len(receiver.requests) == 1
