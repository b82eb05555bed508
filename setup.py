"""Package discovery for the two mapped folders (everything else is in pyproject.toml).

``platform/`` is imported as ``edgelet`` and ``bindings/`` as ``edgelet.bindings`` (SPEC 2),
which pyproject's static ``packages.find`` cannot express; setuptools' own finder walks both
here, so a new binding package (or a sub-package) installs without editing any list.
"""

from setuptools import find_packages, setup

setup(
    packages=["edgelet", "edgelet.bindings"]
    + [f"edgelet.{name}" for name in find_packages("platform")]
    + [f"edgelet.bindings.{name}" for name in find_packages("bindings")],
)
