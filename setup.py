"""Build script. Metadata, dependencies and package data are in setup.cfg; only the package list is here.

``setup.cfg`` cannot say it: the top-level ``templates/`` folder ships as the data
package ``self_billing_templates`` (mapped in ``package_dir``), and folders that
hold only data (templates, migration revisions) are listed as namespace packages
so setuptools neither drops nor warns about them.
"""
from setuptools import find_namespace_packages, setup

PLUGIN = find_namespace_packages(include=["plugin", "plugin.*"], exclude=["*.__pycache__"])
TEMPLATES = ["self_billing_templates"] + [
    f"self_billing_templates.{name}"
    for name in find_namespace_packages(where="templates", exclude=["*.__pycache__", "__pycache__"])
]

setup(packages=PLUGIN + TEMPLATES)
