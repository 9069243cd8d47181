"""What both profile-aware spawners share: the form, the refusals, per-user environment.

The spawner classes combine `ProfileSpawnerMixin` with KubeSpawner or a local-process
spawner; each says where its catalog comes from (`get_catalog`) and applies the resolved
server in its own way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import escapism
from jupyterhub.spawner import SpawnException
from traitlets import Any, Dict, Enum, Float, List, Unicode, default

from .. import catalog
from ..catalog import interfaces, launch
from ..usage_client import UsageEventPoster
from . import budget, form, line
from .stop_reason import stop_reason

_SAFE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")


def escaped_username(name: str) -> str:
    """The username as KubeSpawner's `{escaped_username}` writes it (safe in paths, URLs)."""
    return escapism.escape(name, safe=_SAFE_CHARS, escape_char="-").lower()


def user_groups(user) -> list[str]:
    """Names of the JupyterHub groups of `user` (empty for a mock user without groups)."""
    return [getattr(g, "name", g) for g in getattr(user, "groups", None) or []]


class ProfileRefused(SpawnException, ValueError):
    """A refused selection: a 4xx with its message for JupyterHub, and still the
    ValueError that code written for KubeSpawner's own validation expects. Its text is
    the message alone, in plain words: the form, the REST API and the log say that."""

    @property
    def jupyterhub_message(self) -> str:
        return self.message

    def __str__(self) -> str:
        return self.message


class BudgetRefused(ProfileRefused):
    """A start the person's budgets do not allow (a 403 with the cost service's message)."""


class ConfirmLaunch(Exception):
    """A launch link's selection, to be confirmed on the form (not an error)."""


class ProfileSpawnerMixin(line.WaitsInLine):
    """Profiles filtered by group, checked on the server side, with readable refusals."""

    user_environment = Dict(
        config=True,
        help="""Environment variables for every server. `{username}` and
        `{escaped_username}` in a value are replaced, e.g.
        `{"SCRATCH_BUCKET": "s3://my-bucket/{escaped_username}"}`.""",
    )

    admin_environment = Dict(
        config=True,
        help="Environment variables added to the servers of hub admins only.",
    )

    usage_events_url = Unicode(
        "",
        config=True,
        help="""Where to post start and stop events for accounting (the usage service's
        api/v1/events). The spawn never waits for it: if the service is down, the event
        is lost and the service's reconciliation loop records the session instead.""",
    )

    usage_events_token = Unicode("", config=True, help="The usage service's events token.")

    usage_events_timeout = Float(5, config=True, help="Seconds before an event post is given up.")

    usage_recent_use_url = Unicode(
        "",
        config=True,
        help="""The usage service's api/v1/recent-use: what the person's last sessions on each
        profile used, said beside each choice on the spawn page of a hub without budgets (with
        budgets, the budget check's answer carries it). Asked with the events token.""",
    )

    usage_recent_use_timeout = Float(
        2, config=True, help="Seconds the spawn page waits for recent use before it is drawn without."
    )

    budget_check_url = Unicode(
        "",
        config=True,
        help="""The cost service's api/v1/budgets/check: asked at every start whether the
        person's budgets allow the server (empty: no budgets).""",
    )

    budget_check_token = Unicode("", config=True, help="The cost service's check token.")

    budget_check_timeout = Float(3, config=True, help="Seconds before a budget check counts as unreadable.")

    budget_when_unreadable = Unicode(
        "allow",
        config=True,
        help="""When the budget check cannot be made: `allow` the start (counted on the
        hub's /metrics) or `deny` it with a message.""",
    )

    pricing = Any(
        None,
        allow_none=True,
        config=True,
        help="The hub's prices (a twoi2c_hub.catalog.Pricing): each choice's price per hour on the form.",
    )

    instance_types = Dict(config=True, help="Instance types by name, for prices by instance type.")

    interfaces = List(
        config=True,
        help="""The interfaces offered on the spawn page, the first the default:
        `{"name": "lab", "display_name": "JupyterLab", "url": "/lab", "images": []}`
        (`images`: shell-style patterns of the images that have it; empty: all).""",
    )

    spawn_form = Enum(
        ["cards", "fancy-profiles"],
        "cards",
        config=True,
        help="""How the spawn page draws the profiles: `cards` (ours: prices, plain-word
        resources, budget-disabled choices greyed out; works without JavaScript) or
        `fancy-profiles` (2i2c's jupyterhub-fancy-profiles, which must be installed and
        its static files served: the community config's `spawner.form` does both).
        Either way only this person's profiles are shown and every start is checked.""",
    )

    # the operator's default_url, kept while a launch link's git-pull replaces it for one start
    _configured_default_url: str | None = None

    # the selection last resolved by `resolve_selection`, for labels and accounting
    resolved_server: catalog.ResolvedServer | None = None

    # what the hub's calls so far learned for the next spawn form (a launch link, the
    # posted choice, a refusal by the budget): replaced at each step, never changed
    form_context: form.FormContext = form.FormContext()

    # --- the catalog ----------------------------------------------------------------

    async def get_catalog(self) -> list[dict]:
        """The whole catalog, before filtering by group. Spawner classes implement this."""
        raise NotImplementedError

    def get_groups(self) -> list[str]:
        return user_groups(self.user)

    async def offered_profiles(self) -> list[dict]:
        return catalog.available(await self.get_catalog(), self.get_groups())

    def profile_form_notes(self, profile: dict) -> dict[str, str]:
        """Notes shown beside choices, keyed `option/choice` (e.g. what runs instead)."""
        return {}

    def cannot_give(self, override: dict) -> str | None:
        """What a profile's or choice's override asks for that this spawner cannot give a
        server at all ("a GPU"), or None. Such a profile or choice is shown disabled with
        the reason and refused at start. Spawner classes override this."""
        return None

    def unavailable_choices(self, profile: dict) -> dict[str, str]:
        """The profile ("") and choices ("option/choice") this spawner cannot give, each
        with the reason the form shows."""
        unavailable = {}
        base = profile.get("kubespawner_override") or {}
        if missing := self.cannot_give(base):
            unavailable[""] = f"this hub cannot give its servers {missing}"
        for option_key, option in (profile.get("profile_options") or {}).items():
            for choice_key, choice in (option.get("choices") or {}).items():
                merged = json.loads(json.dumps(base))
                catalog.merge_override(merged, choice.get("kubespawner_override") or {})
                if not unavailable.get("") and (missing := self.cannot_give(merged)):
                    unavailable[f"{option_key}/{choice_key}"] = f"this hub cannot give its servers {missing}"
        return unavailable

    async def render_profile_form(self, spawner=None) -> str:
        context, self.form_context = self.form_context, self.form_context.drawn()
        return await form.render(self, context)

    @default("options_form")
    def _default_options_form(self):
        return self.render_profile_form

    # --- checking a selection --------------------------------------------------------

    async def resolve_selection(self, selection) -> catalog.ResolvedServer:
        """The server `selection` starts for this user; a SpawnException (4xx) if refused."""
        from_form = self.form_context.awaiting_start
        self.form_context = self.form_context.checked()
        if selection is not None and not isinstance(selection, dict):
            raise ProfileRefused(
                'user_options must be a JSON object like {"profile": "..."}.',
                reason="profile",
                status_code=400,
            )
        selection = dict(selection or {})
        try:
            launch.check_selection(selection)
            interface_name = selection.pop("interface", None)
            pull = selection.pop("git_pull", None)
            if pull is not None and not isinstance(pull, dict):
                raise catalog.ProfileError('git_pull must be an object like {"repo": "https://..."}.')
            git_pull = launch.git_pull_from(pull or {})
            resolved = catalog.resolve(await self.get_catalog(), self.get_groups(), selection)
            interface = interfaces.chosen(self.interfaces, interface_name, resolved.image)
        except catalog.ProfileError as e:
            raise ProfileRefused(e.message, reason="profile", status_code=e.status) from None
        if missing := self.cannot_give(resolved.override):
            # the form shows it disabled: a forged form or an API request gets here
            picked = [c["display_name"] for c in resolved.choices.values() if c.get("display_name")]
            named = ", ".join([resolved.profile_display_name or resolved.profile_slug or "", *picked])
            raise ProfileRefused(
                f"The server '{named}' asks for {missing}, which this hub cannot give its servers. "
                "Please choose another server.",
                reason="profile",
                status_code=400,
            )
        # where the server opens: the chosen interface (else as configured), through
        # nbgitpuller first when a launch link named a repository
        if self._configured_default_url is None:
            self._configured_default_url = self.default_url or ""
        opens = interface["url"] if interface else self._configured_default_url
        self.default_url = launch.git_pull_url(git_pull, opens) if git_pull else opens
        try:
            await self.check_budget(resolved)
        except BudgetRefused:
            if from_form:  # the form JupyterHub draws next, under the refusal
                self.form_context = self.form_context.refused_by_the_budget()
            raise
        self.resolved_server = resolved
        return resolved

    async def check_budget(self, resolved: catalog.ResolvedServer) -> None:
        """Refuse, with the cost service's message, a server the person's budgets do not
        allow: one call to the service at every start."""
        if not self.budget_check_url:
            return
        answer = await budget.ask_for(self, resolved.summary())
        if answer is None:
            mode = "deny" if self.budget_when_unreadable == "deny" else "allow"
            budget.UNREADABLE.labels(mode).inc()
            if mode == "deny":
                raise ProfileRefused(
                    "Your budget cannot be checked right now, so no server can start. "
                    "Please try again in a few minutes.",
                    reason="budget",
                    status_code=503,  # not the person's doing: the service is unavailable
                )
            self.log.warning(
                "Budget of %s unreadable: starting anyway (budget_when_unreadable = allow)", self.user.name
            )
            return
        if not answer.allowed:
            raise BudgetRefused(
                answer.message or "Your budget does not allow this server.", reason="budget", status_code=403
            )

    def options_from_query(self, query_data):
        """A link never starts a server: `GET /hub/spawn?profile=gpu` (followed from another
        site, or loaded as an image) shows the form with that selection, and only the
        person's own POST of the form starts it.

        JupyterHub calls this to start a server straight from a GET and falls back to the
        form when it raises. The exception carries no message: the form itself says what
        happened, as a note rather than an error."""
        selection = catalog.selection_from_link(query_data)
        try:
            git_pull = launch.git_pull_from(query_data)
        except catalog.ProfileError as e:  # a malformed link: the form says so, pulls nothing
            git_pull = {"error": e.message}
        self.form_context = self.form_context.linked(selection, git_pull)
        raise ConfirmLaunch()

    @default("options_from_form")
    def _default_options_from_form(self):
        return self.selection_from_form

    def selection_from_form(self, formdata):
        """The selection in a posted spawn form. It is checked when the server starts,
        first thing: a refusal there reaches the form as a 4xx with its message, as it
        reaches a REST API client, and nothing starts."""
        selection = catalog.selection_from_form(formdata)
        if selection and any(formdata.get(launch.FORM_PREFIX + key) for key in launch.KEYS):
            # checked with the rest of the selection when the server starts
            selection["git_pull"] = {
                key: formdata[launch.FORM_PREFIX + key][0]
                for key in launch.KEYS
                if formdata.get(launch.FORM_PREFIX + key)
            }
        if selection and formdata.get("interface"):
            selection["interface"] = formdata["interface"][0]  # checked against the image at start
        self.form_context = self.form_context.posted(selection)
        return selection

    # --- accounting events -----------------------------------------------------------

    def post_usage_event(self, event: dict) -> None:
        """Send an event in the background: nothing here waits for the usage service."""
        UsageEventPoster(self.usage_events_url, self.usage_events_token, self.usage_events_timeout).post(event)

    def _started_iso(self) -> str | None:
        started = getattr(getattr(self, "orm_spawner", None), "started", None)
        return started.isoformat() + "Z" if started is not None else None

    async def start(self):
        try:
            result = await super().start()
            await self.hold_place_until_answering(result)
        finally:
            self.leave_line_after_start()
        started = self._started_iso()
        if started is not None:
            summary = self.resolved_server.summary().wire() if self.resolved_server else {}
            self.post_usage_event(
                {
                    "type": "start",
                    "username": self.user.name,
                    "server_name": self.name or "",
                    "started": started,
                    "server": summary,
                    "groups": self.get_groups(),
                }
            )
        return result

    def stop_reason(self) -> str:
        """Who stopped this server: the person, an admin, the idle culler, or the hub."""
        return stop_reason(self.user.name)

    async def stop(self, now=False):
        reason = self.stop_reason()
        started = self._started_iso()
        await super().stop(now=now)
        if started is not None:
            self.post_usage_event(
                {
                    "type": "stop",
                    "username": self.user.name,
                    "server_name": self.name or "",
                    "started": started,
                    "stopped": datetime.now(UTC).isoformat(),
                    "reason": reason,
                }
            )

    async def poll_and_notify(self):
        # the hub's poll finds a server that died on its own: the hub will not call stop()
        started = self._started_iso()
        status = await super().poll_and_notify()
        if status is not None and started is not None:
            self.post_usage_event(
                {
                    "type": "stop",
                    "username": self.user.name,
                    "server_name": self.name or "",
                    "started": started,
                    "stopped": datetime.now(UTC).isoformat(),
                    "reason": "crash",
                }
            )
        return status

    # --- environment -----------------------------------------------------------------

    def community_environment(self) -> dict[str, str]:
        """`user_environment` (and `admin_environment` for admins), placeholders filled."""
        values = {"username": self.user.name, "escaped_username": escaped_username(self.user.name)}
        env = {k: v.format(**values) for k, v in self.user_environment.items()}
        if getattr(self.user, "admin", False):
            env.update({k: v.format(**values) for k, v in self.admin_environment.items()})
        return env

    def resolved_annotation(self) -> str:
        return json.dumps(self.resolved_server.summary().wire() if self.resolved_server else {}, sort_keys=True)
