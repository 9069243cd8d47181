"""The config reference is generated from the models: every setting is in it, described."""

import sys
from pathlib import Path

from twoi2c_hub.config.base import Strict

sys.path.insert(0, str(Path(__file__).parent.parent / "docs" / "_ext"))
import config_reference  # noqa: E402


def _models(cls=Strict):
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)


def test_every_setting_is_in_the_reference_with_what_it_does():
    reference = config_reference.render()
    undocumented = []
    for model in _models():
        if model.__name__.startswith("_") or model.__subclasses__():
            continue  # bases: their settings appear in the sections that use them
        assert f"## {model.__name__}" in reference, model.__name__
        for name, field in model.model_fields.items():
            row = next(line for line in reference.splitlines() if line.startswith(f"| `{field.alias or name}` |"))
            if not field.description:
                undocumented.append(f"{model.__name__}.{name}")
            assert row
    assert undocumented == [], f"settings without a description: {undocumented}"
