"""twoi2c-oidc: any OpenID Connect provider, configured from its discovery URL alone.

Extends OAuthenticator's GenericOAuthenticator, which needs its endpoints spelt out:
here they are read from `<issuer>/.well-known/openid-configuration` at start.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from functools import cached_property

from oauthenticator import generic as upstream
from traitlets import Float, Unicode, default

from .base import CommunityAuthenticatorMixin


class GenericOAuthenticator(CommunityAuthenticatorMixin, upstream.GenericOAuthenticator):
    """GenericOAuthenticator configured from an OpenID Connect discovery document.

    It keeps the upstream name, so `c.GenericOAuthenticator` settings of an existing
    generic-oauth hub apply unchanged."""

    provider_name = "oidc"
    subject_claim = "sub"

    discovery_url = Unicode(
        "",
        config=True,
        help="""The provider's discovery document, e.g.
        https://id.example.org/.well-known/openid-configuration (or its issuer URL).
        Sets authorize_url, token_url, userdata_url and, if the provider has one,
        the end-session URL offered to people who want another account.""",
    )

    discovery_timeout = Float(10, config=True, help="Seconds to wait for the discovery document.")

    @cached_property
    def discovery(self) -> dict:
        if not self.discovery_url:
            return {}
        url = self.discovery_url
        if not url.rstrip("/").endswith("/.well-known/openid-configuration"):
            url = url.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=self.discovery_timeout) as response:
                document = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ValueError(f"Cannot read the OpenID Connect discovery document at {url}: {e}") from None
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint") if k not in document]
        if missing:
            raise ValueError(f"The discovery document at {url} has no {', '.join(missing)}")
        return document

    @default("authorize_url")
    def _discovered_authorize_url(self):
        return self.discovery.get("authorization_endpoint") or super()._authorize_url_default()

    @default("token_url")
    def _discovered_token_url(self):
        return self.discovery.get("token_endpoint") or super()._token_url_default()

    @default("userdata_url")
    def _discovered_userdata_url(self):
        return self.discovery.get("userinfo_endpoint") or super()._userdata_url_default()

    @default("basic_auth")
    def _basic_auth_from_discovery(self):
        # OpenID Connect's default token-endpoint authentication is client_secret_basic
        if not self.discovery_url:
            return upstream.GenericOAuthenticator.class_traits()["basic_auth"].default()
        methods = self.discovery.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return "client_secret_basic" in methods

    @default("scope")
    def _default_scope(self):
        return ["openid", "profile", "email"] if self.discovery_url else []

    def check_allow_config(self):
        super().check_allow_config()
        # read the discovery document now: a wrong URL stops the hub at start, not at login
        _ = self.authorize_url, self.token_url, self.userdata_url

    def switch_account_url(self):
        return self.discovery.get("end_session_endpoint")
