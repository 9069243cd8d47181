"""The community's own words on the hub's pages: Markdown rendered safely.

markdown-it-py in CommonMark mode with raw HTML off (HTML written in the config is shown as
text), then nh3 (the ammonia sanitiser) keeping only text-formatting tags and links to
http(s) and mailto addresses: what a config file says can never run in a person's browser.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
TAGS = {"p", "a", "em", "strong", "code", "ul", "ol", "li", "br", "blockquote", "h3", "h4"}


def render(text: str | None, *, inline: bool = False) -> Markup | None:
    """Safe HTML for `text` (None stays None). `inline`: without the surrounding <p>, for a
    one-line banner."""
    if not text:
        return None
    html = _parser.renderInline(text) if inline else _parser.render(text)
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )
    return Markup(clean)  # noqa: S704 - sanitised just above
