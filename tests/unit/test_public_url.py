"""The public URL decision links start with: an http(s) address, or a clear refusal."""

import pytest

from hitl.service.errors import InvalidSettings
from hitl.service.settings import Settings, check_public_url


def test_a_public_url_is_kept_without_its_trailing_slash() -> None:
    assert check_public_url(" https://hitl.example.com/ ") == "https://hitl.example.com"
    assert check_public_url("http://10.0.0.5:8000/hitl") == "http://10.0.0.5:8000/hitl"


@pytest.mark.parametrize(
    "url", ["hitl.example.com", "ftp://hitl.example.com", "https://", "https://x.org/?a=1", "/"]
)
def test_a_public_url_that_is_not_an_http_address_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(InvalidSettings, match="HITL_PUBLIC_URL / --public-url"):
        check_public_url(url)


def test_the_settings_read_the_public_url_from_the_environment() -> None:
    environ = {"HITL_DB": "x.sqlite", "HITL_PUBLIC_URL": "https://hitl.example.com/"}
    assert Settings.from_env(environ).public_url == "https://hitl.example.com"
    assert Settings.from_env({"HITL_DB": "x.sqlite"}).public_url is None
