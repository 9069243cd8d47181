"""A real OpenID Connect provider on loopback (oidc-provider-mock), for login tests."""

import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import requests

from twoi2c_hub.localhub import TAG_VARIABLE
from twoi2c_hub.network import free_port


class OIDCProvider:
    def __init__(self, log_dir: Path, tag: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = Path(sys.executable).parent / "oidc-provider-mock"
        self.process = subprocess.Popen(
            [str(command), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=open(log_dir / "oidc-provider.log", "wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, TAG_VARIABLE: tag},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.discovery_url, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("oidc-provider-mock did not start")

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def set_claims(self, subject: str, claims: dict) -> None:
        response = requests.put(f"{self.url}/users/{urllib.parse.quote(subject, safe='')}", json=claims, timeout=10)
        assert response.status_code in (200, 204), response.text

    def log_in(self, hub_url: str, subject: str, session: requests.Session | None = None):
        """The whole flow as a browser makes it: hub -> provider's authorize page ->
        the person picks `subject` -> hub callback. Returns (session, final response)."""
        session = session or requests.Session()
        response = session.get(f"{hub_url}/hub/oauth_login?next=", allow_redirects=False, timeout=30)
        assert response.status_code == 302, response.text
        authorize = response.headers["Location"]
        assert authorize.startswith(self.url)
        response = session.post(authorize, data={"sub": subject}, allow_redirects=False, timeout=30)
        assert response.status_code == 302, response.text
        callback = response.headers["Location"]
        assert callback.startswith(f"{hub_url}/hub/oauth_callback")
        response = session.get(callback, allow_redirects=True, timeout=30)
        return session, response

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
