"""Where the plugin's Jinja templates live, for every blueprint that renders HTML.

The templates ship in the top-level ``templates/`` folder of the source tree,
installed as the data package ``self_billing_templates``. Blueprints pass
:data:`TEMPLATE_FOLDER` as their ``template_folder``. Every template name starts
with ``self_billing/``, so a host overrides any of them by putting a file of the
same name in its own template folder (the app's folder is searched first).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["TEMPLATE_FOLDER", "find_template_folder"]


#: A template every copy has: a folder without it is no template folder (pip leaves the empty
#: folders of an uninstalled copy behind when an editable install replaces it, and the namespace
#: package then lists that empty folder first).
_SENTINEL = Path("self_billing") / "portal" / "orders.html"


def find_template_folder() -> str:
    """The folder holding ``self_billing/...`` templates: the installed package, else the checkout's."""
    spec = importlib.util.find_spec("self_billing_templates")
    if spec is not None:
        for location in spec.submodule_search_locations or ():
            if (Path(location) / _SENTINEL).is_file():
                return str(location)
    checkout = Path(__file__).resolve().parent.parent / "templates"
    return str(checkout)


#: Absolute path of the template folder, found once at import.
TEMPLATE_FOLDER: str = find_template_folder()
