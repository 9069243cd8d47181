"""`auth: provider: external`: any other JupyterHub authenticator class, found as
JupyterHub finds its `authenticator_class` (`resolve`: what to install when it is missing),
and the `unconverted` marker `twoi2c-hub convert` writes when it cannot carry one."""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from .auth import GroupMapping, _Auth
from .base import Strict, _error

if TYPE_CHECKING:
    from jupyterhub.auth import Authenticator

# the community config's own settings: never in `settings`, where they would be set twice
_FIRST_CLASS = {
    "allow_all": "allow_all",
    "allowed_users": "allowed_users",
    "admin_users": "admin_users",
    "blocked_users": "blocked_users",
    "allowed_groups": "allowed_groups",
    "admin_groups": "admin_groups",
    "auth_refresh_age": "refresh_age",
    "group_patterns": "groups.import",
    "group_renames": "groups.rename",
    "group_prefix": "groups.prefix",
    "anonymize_usernames": "anonymize_usernames",
    "staff_users": "staff_users",
    "groups_claim": "groups_claim",
}
# a setting whose value is a secret (or holds one: LTI 1.1's consumers, password_groups)
_SECRET = re.compile(r"secret|password|private_key|api_key|^consumers$")


class ExternalAuthSection(_Auth):
    """`provider: external`: any other JupyterHub authenticator class (Canvas, LTI,
    Auth0, Google, a site's own), with its own settings."""

    provider: Literal["external"]
    """`external`."""
    class_: str = Field(
        alias="class",
        description="The class: a dotted path (`canvasoauthenticator.CanvasOAuthenticator`) or an "
        "entry-point name of `jupyterhub.authenticators` (`google`, `tmp`, `dummy`, `shared-password`).",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="The class's own settings (traitlets), as `c.<Class>.<name> = value` would set them.",
    )
    settings_from_env: dict[str, str] = Field(
        default_factory=dict,
        description="Settings that are secrets: setting name -> the environment variable holding "
        "its value (JSON for a list or a mapping), never the value itself.",
    )
    groups: GroupMapping = Field(default_factory=GroupMapping, description="How the class's groups are mapped.")
    groups_claim: str | None = Field(
        default=None, description="(OAuthenticator classes) the claim of the user info holding groups."
    )
    anonymize_usernames: bool = Field(
        default=False,
        description="Hub usernames are a keyed hash ($TWOI2C_USERNAME_SECRET) of the subject "
        "(OAuthenticator classes: `subject_claim`; others: the name the class gives).",
    )
    subject_claim: str = Field(
        default="sub", description="(OAuthenticator classes) the user-info claim that is the stable subject."
    )
    staff_users: list[str] = Field(
        default_factory=list, description="(OAuthenticator classes) break-glass admins, by their name at the provider."
    )

    @model_validator(mode="after")
    def _class_usable(self):
        try:
            cls = resolve(self.class_)
        except AuthenticatorNotFound as e:
            raise _error(f"auth.class: {e}") from None
        problems = []
        traits = cls.class_traits(config=True)
        for where, names in (("settings", self.settings), ("settings_from_env", self.settings_from_env)):
            for name in names:
                if name in _FIRST_CLASS:
                    problems.append(f"auth.{where}.{name}: set auth.{_FIRST_CLASS[name]} instead")
                elif name in traits and where == "settings" and _SECRET.search(name):
                    problems.append(
                        f"auth.settings.{name}: a secret; put it in an environment variable and "
                        f"name that in auth.settings_from_env.{name}"
                    )
        if not is_oauthenticator(cls):
            for name in ("groups_claim", "staff_users"):
                if getattr(self, name):
                    problems.append(f"auth.{name}: only for OAuthenticator classes; {cls.__name__} is not one")
        if problems:
            raise _error("\n".join(problems))
        return self


def unknown_setting_warnings(auth: ExternalAuthSection) -> list[str]:
    """Settings the installed class does not have: JupyterHub starts, and traitlets ignores
    them with a warning (a hub may have run a newer or patched version of the class)."""
    cls = resolve(auth.class_)
    traits = cls.class_traits(config=True)
    warnings = []
    for where, names in (("settings", auth.settings), ("settings_from_env", auth.settings_from_env)):
        for name in names:
            if name in traits or name in _FIRST_CLASS:
                continue
            close = difflib.get_close_matches(name, [t for t in traits if t != name], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            version = getattr(sys.modules.get(cls.__module__.split(".")[0]), "__version__", None)
            installed = f" as installed here ({cls.__module__.split('.')[0]} {version})" if version else ""
            warnings.append(
                f"auth.{where}.{name}: is not a setting of {cls.__name__}{installed}: JupyterHub will ignore it{hint}"
            )
    return warnings


class UnconvertedAuthSection(Strict):
    """`provider: unconverted`: what `twoi2c-hub convert` writes when it could not carry
    the hub's authenticator; never valid, so the hub cannot start as something else."""

    provider: Literal["unconverted"]
    """`unconverted`."""
    reason: str = Field(description="Why the authenticator was not converted, and what to do.")

    @model_validator(mode="after")
    def _never_valid(self):
        raise _error(f"auth: the hub's authenticator was not converted: {self.reason}")


def class_facts(name: str) -> tuple[str, bool] | None:
    """(its hub.config section, whether it is an OAuthenticator) of the authenticator
    class `name` names, or None when it is not installed here."""
    try:
        cls = resolve(name)
    except AuthenticatorNotFound:
        return None
    return cls.__name__, is_oauthenticator(cls)


# --- the class `auth.class` names, found as JupyterHub finds its authenticator_class ---

ENTRY_POINTS = "jupyterhub.authenticators"
# what to install for a module or an entry-point name that is not installed
PACKAGES = {
    "oauthenticator": "oauthenticator",
    "ltiauthenticator": "jupyterhub-ltiauthenticator",
    "tmpauthenticator": "jupyterhub-tmpauthenticator",
    "tmp": "jupyterhub-tmpauthenticator",
    "nativeauthenticator": "jupyterhub-nativeauthenticator",
    "firstuseauthenticator": "jupyterhub-firstuseauthenticator",
    "ldapauthenticator": "jupyterhub-ldapauthenticator",
    "canvasoauthenticator": "git+https://github.com/berkeley-dsep-infra/canvasoauthenticator",
}


class AuthenticatorNotFound(Exception):
    """The named authenticator class cannot be used here; the message says why."""


def _install_hint(name: str) -> str:
    package = PACKAGES.get(name) or PACKAGES.get(name.split(":")[0].split(".")[0])
    return f" (pip install {package})" if package else " (install the package that provides it)"


def resolve(name: str) -> type[Authenticator]:
    """The authenticator class `name` names: an entry-point name or a dotted path
    (`module.Class` or `module:Class`), as JupyterHub's authenticator_class reads it."""
    for entry in entry_points(group=ENTRY_POINTS):
        if entry.name == name:
            try:
                cls = entry.load()
            except Exception as e:
                raise AuthenticatorNotFound(
                    f"'{name}' ({entry.value}) is installed but cannot be imported: {e}"
                ) from None
            return _authenticator(name, cls)
    if "." not in name and ":" not in name:
        raise AuthenticatorNotFound(
            f"'{name}' is not installed: no {ENTRY_POINTS} entry point of that name{_install_hint(name)}"
        )
    module_name, _, attribute = name.partition(":") if ":" in name else name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise AuthenticatorNotFound(f"'{name}' is not installed{_install_hint(name)}") from None
        raise AuthenticatorNotFound(f"'{name}' cannot be imported: {e}{_install_hint(e.name or '')}") from None
    except Exception as e:
        raise AuthenticatorNotFound(f"'{name}' cannot be imported: {type(e).__name__}: {e}") from None
    cls = getattr(module, attribute, None)
    if cls is None:
        raise AuthenticatorNotFound(f"'{name}': the module {module_name} has no {attribute}")
    return _authenticator(name, cls)


def _authenticator(name: str, cls) -> type[Authenticator]:
    from jupyterhub.auth import Authenticator

    if not (isinstance(cls, type) and issubclass(cls, Authenticator)):
        raise AuthenticatorNotFound(f"'{name}' is not a JupyterHub Authenticator class")
    return cls


def is_oauthenticator(cls: type) -> bool:
    try:
        from oauthenticator.oauth2 import OAuthenticator
    except ImportError:  # pragma: no cover - a dependency of this package
        return False
    return issubclass(cls, OAuthenticator)
