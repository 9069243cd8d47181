"""The spawn form a person sees: the profiles offered to them as cards, each choice's price
and resources in plain words, the budget's notice and the choices it disables, a launch
link's selection and repository, and the interface to open in.

With `spawn_form = "fancy-profiles"` the profiles are drawn instead by 2i2c's
jupyterhub-fancy-profiles, given only what this person is offered (and never the
overrides); the notices and the interface choice stay ours, and every selection is
checked at start as from the cards.

JupyterHub calls a spawner's hooks one at a time on the same object, and they cannot hand
each other arguments: a GET of the spawn page calls `options_from_query` (a launch link)
and then draws the form; a POST calls `options_from_form`, starts the server and, should
the start be refused, draws the form again. What those earlier calls learned for the
form is one value, a `FormContext`: the spawner keeps the current one and replaces it at
each step, and the form is drawn from the one it is given."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import jinja2

from .. import catalog, dates
from ..catalog import interfaces, launch
from ..paths import templates_dir
from . import budget

_form_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(templates_dir())),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    extensions=[dates.LocalDates],  # dates in the reader's locale
)
# a profile list given to a script keeps its order (jinja sorts keys by default)
_form_environment.policies["json.dumps_kwargs"] = {"sort_keys": False}

# where jupyterhub-fancy-profiles' static files are served, under the hub's base URL
FANCY_PROFILES_STATIC = "fancy-profiles/static/"


@dataclass(frozen=True)
class FormContext:
    """What the hub's earlier calls on a spawner learned for its next spawn form."""

    # a launch link's selection and repository, shown once for the person to confirm
    link_selection: dict | None = None
    link_git_pull: dict | None = None
    # the selection last posted with the form, started or not: should the hub turn the
    # start away before it begins ("the hub is busy"), the person comes back to their choice
    posted_selection: dict | None = None
    # the form was posted and its start has not been checked yet
    awaiting_start: bool = False
    # the start from the form was refused by the budget: the form drawn under the refusal
    # leaves out its own "budget used up" notice, which would repeat its figures (a REST
    # API refusal sets nothing)
    refused_by_budget: bool = False

    def linked(self, selection: dict | None, git_pull: dict | None) -> FormContext:
        """A launch link opened the spawn page (`options_from_query`)."""
        return replace(self, link_selection=selection, link_git_pull=git_pull)

    def posted(self, selection: dict) -> FormContext:
        """The form was posted (`options_from_form`); its start comes next."""
        return replace(self, posted_selection=selection, awaiting_start=True, refused_by_budget=False)

    def checked(self) -> FormContext:
        """A start is being checked: a posted form's start is no longer awaited."""
        return replace(self, awaiting_start=False, refused_by_budget=False)

    def refused_by_the_budget(self) -> FormContext:
        """The posted form's start was refused by the budget."""
        return replace(self, refused_by_budget=True)

    def drawn(self) -> FormContext:
        """What is left once a form is drawn: the posted choice; the link and the refusal
        are said once."""
        return FormContext(posted_selection=self.posted_selection)


def may_start(profile: dict, disabled: dict) -> bool:
    """Whether some selection of `profile` is not disabled: the profile itself, and in
    each option a choice (or a write-in)."""
    refused = disabled.get(profile["slug"], {})
    if refused.get(""):
        return False
    for option_key, option in (profile.get("profile_options") or {}).items():
        choices = option.get("choices") or {}
        if (option.get("unlisted_choice") or {}).get("enabled") or not choices:
            continue
        if all(refused.get(f"{option_key}/{key}") for key in choices):
            return False
    return True


def preselected(offered: list[dict], selection: dict, disabled: dict) -> str | None:
    """The profile the form selects: the person's own (last started, refused just now, or
    from a launch link) while it may start; else the default; else the first that may."""
    usable = [p["slug"] for p in offered if may_start(p, disabled)]
    if selection.get("profile") in usable:
        return selection["profile"]
    default = next((p["slug"] for p in offered if p.get("default") and p["slug"] in usable), None)
    return default or (usable[0] if usable else None)


async def render(spawner, context: FormContext) -> str:
    """The form for `spawner` (a ProfileSpawnerMixin), drawn with `context`."""
    offered = await spawner.offered_profiles()
    if not offered:
        if await spawner.get_catalog():
            # nothing for this person: say so instead of starting something
            return _form_environment.get_template("profile_form_none.html").render(
                groups=sorted(spawner.get_groups()),
            )
        return ""
    from_link = context.link_selection
    selection = from_link or context.posted_selection or spawner.user_options or {}
    if selection.get("profile") not in {p["slug"] for p in offered}:
        # a profile that is gone or was never offered (a refused API request saves its
        # options too): show the defaults, so some profile is always selected
        selection = {}
    prices = budget.choice_prices(offered, spawner.pricing, spawner.instance_types)
    currency = spawner.pricing.currency if spawner.pricing is not None else ""
    state = await budget.ask_for(spawner)
    notice, over_budget, hours = budget.form_notes(state, prices, currency)
    # drawn again under the refusal of the form just posted (JupyterHub draws it next)
    if context.refused_by_budget and state and state.stops_every_start:
        notice = None  # the refusal just drawn above the form says it, with the same figures
    # what this spawner cannot give is disabled for good: its reason before the budget's
    unavailable = {p["slug"]: spawner.unavailable_choices(p) for p in offered}
    disabled = {
        slug: {**over_budget.get(slug, {}), **unavailable.get(slug, {})} for slug in {*over_budget, *unavailable}
    }
    cannot_start = start_blocked(offered, disabled, unavailable, state)
    resources = catalog.plain_resources(offered)
    around = {
        "from_link": from_link is not None,
        "link_refused": refused_choice(selection, disabled) if from_link else None,
        "git_pull": context.link_git_pull,
        "git_pull_prefix": launch.FORM_PREFIX,
        "budget": notice,
        "interfaces": spawner.interfaces,
        "interface": await preselected_interface(spawner, selection),
        "cannot_start": cannot_start,
        "prices": prices,
        "currency": currency,
        "disabled": disabled,
        "unavailable": unavailable,
        "hours_left": hours,
        "notes": {p["slug"]: spawner.profile_form_notes(p) for p in offered},
        # what the person's recent sessions on each profile used (measured, not reserved)
        "recent_use": {slug: use.text() for slug, use in (await budget.recent_use(spawner, state)).items()},
        "resources": resources,
        "priced_options": priced_options(resources),
    }
    if spawner.spawn_form == "fancy-profiles":
        chosen = preselected(offered, selection, disabled)
        if chosen != selection.get("profile"):
            selection = {"profile": chosen} if chosen else {}
        return _form_environment.get_template("fancy_profiles_form.html").render(
            offered=offered,
            profiles=catalog.for_the_page(without(offered, unavailable), selection),
            script=spawner.hub.base_url + FANCY_PROFILES_STATIC + "dist/form.js",
            beyond_budget=beyond_budget(offered, over_budget),
            **around,
        )
    return _form_environment.get_template("profile_form.html").render(
        profiles=offered,
        preselected=preselected(offered, selection, disabled),
        checked=checked_choices(offered, selection, disabled),
        selection=selection,
        **around,
        unlisted_sentinel=catalog.UNLISTED_SENTINEL,
        unlisted_suffix=catalog.UNLISTED_SUFFIX,
    )


def refused_choice(selection: dict, disabled: dict) -> str | None:
    """Why the profile or a choice of `selection` (a launch link's) cannot start, if so."""
    refused = disabled.get(selection.get("profile"), {})
    keys = ["", *(f"{key}/{value}" for key, value in selection.items() if key != "profile")]
    return next((refused[key] for key in keys if refused.get(key)), None)


def priced_options(resources: dict[str, dict]) -> dict[str, list[str]]:
    """profile slug -> the options whose choices change what a server gets (and costs),
    from `catalog.plain_resources`: the cards draw each of their choices with its
    resources and price."""
    return {slug: list(dict.fromkeys(key.partition("/")[0] for key in keys if key)) for slug, keys in resources.items()}


def checked_choices(offered: list[dict], selection: dict, disabled: dict) -> dict[str, dict[str, str | None]]:
    """profile slug -> option -> the choice the cards check: the person's own while it may
    start, else the default, else the first that may (None: none may)."""
    checked: dict[str, dict[str, str | None]] = {}
    for profile in offered:
        refused = disabled.get(profile["slug"], {})
        mine = selection if selection.get("profile") == profile["slug"] else {}
        for option_key, option in (profile.get("profile_options") or {}).items():
            choices = option.get("choices") or {}
            usable = [key for key in choices if not refused.get(f"{option_key}/{key}")]
            default = next((key for key, c in choices.items() if c.get("default") and key in usable), None)
            own = mine.get(option_key) if mine.get(option_key) in usable else None
            checked.setdefault(profile["slug"], {})[option_key] = own or default or (usable[0] if usable else None)
    return checked


def start_blocked(offered: list[dict], disabled: dict, unavailable: dict, state) -> str | None:
    """Why nothing may start from this form (its Start button is disabled), or None."""
    if state is not None and state.stops_every_start:
        return "No server can start: your budget is used up."
    if any(may_start(p, disabled) for p in offered):
        return None
    if all(not may_start(p, unavailable) for p in offered):
        return "No server can start: none of the servers offered to you can run on this hub."
    # the rest is the budget's doing (it disables nothing else)
    return "No server can start now: those this hub can run cost more than is left of your budget."


def without(offered: list[dict], unavailable: dict) -> list[dict]:
    """The offered profiles less what this spawner cannot give (for a form that cannot
    grey them out): a profile left without a choice in an option is left out too."""
    kept = []
    for profile in offered:
        refused = unavailable.get(profile["slug"], {})
        if refused.get(""):
            continue
        profile = copy.deepcopy(profile)
        startable = True
        for option_key, option in (profile.get("profile_options") or {}).items():
            choices = option.get("choices") or {}
            left = {key: c for key, c in choices.items() if not refused.get(f"{option_key}/{key}")}
            if left != choices and left and not any(c.get("default") for c in left.values()):
                next(iter(left.values()))["default"] = True
            option["choices"] = left
            if choices and not left and not (option.get("unlisted_choice") or {}).get("enabled"):
                startable = False
        if startable:
            kept.append(profile)
    return kept


def beyond_budget(offered: list[dict], disabled: dict) -> list[str]:
    """The profiles and choices the budget disables, each as "name: reason" (a form that
    cannot grey them out lists them; the start refuses them either way)."""
    lines = []
    for profile in offered:
        for key, reason in disabled.get(profile["slug"], {}).items():
            name = profile["display_name"]
            if key:
                option, _, choice = key.partition("/")
                picked = profile["profile_options"][option]["choices"].get(choice, {})
                name = f"{name}, {picked.get('display_name', choice)}"
            lines.append(f"{name}: {reason}")
    return lines


async def preselected_interface(spawner, selection: dict) -> str | None:
    """The interface the form selects: the person's last, if it can open the image
    their last selection starts (a refused RStudio is not offered again as chosen);
    else the first offered for every image, else the first."""
    if not spawner.interfaces:
        return None
    fallback = next((i for i in spawner.interfaces if not i.get("images")), spawner.interfaces[0])["name"]
    saved = selection.get("interface")
    if saved is None:
        return fallback
    rest = {k: v for k, v in selection.items() if k not in ("interface", "git_pull")}
    try:
        image = catalog.resolve(await spawner.get_catalog(), spawner.get_groups(), rest).image
        return interfaces.chosen(spawner.interfaces, saved, image)["name"]
    except catalog.ProfileError:
        return fallback
