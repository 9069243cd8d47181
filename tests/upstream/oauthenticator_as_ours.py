"""pytest plugin: make OAuthenticator's own tests (shipped in its wheel) use our classes.

Loaded with `-p` before `oauthenticator.tests.test_github` and friends import their
authenticator from `oauthenticator.github` etc., it puts our subclass in that name.
"""

import oauthenticator.cilogon
import oauthenticator.generic
import oauthenticator.github

from twoi2c_hub.authenticators import cilogon, github, oidc

oauthenticator.github.GitHubOAuthenticator = github.GitHubOAuthenticator
oauthenticator.cilogon.CILogonOAuthenticator = cilogon.CILogonOAuthenticator
oauthenticator.generic.GenericOAuthenticator = oidc.GenericOAuthenticator
