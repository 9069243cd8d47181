"""Sphinx configuration: MyST Markdown pages, the config reference generated from the models."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

project = "twoi2c_hub"
author = "the twoi2c_hub developers"
copyright = "2026, the twoi2c_hub developers"

extensions = ["myst_parser", "config_reference"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
html_theme = "pydata_sphinx_theme"
html_title = "twoi2c_hub"
html_theme_options = {"navigation_with_keys": False}
exclude_patterns = ["_build"]
