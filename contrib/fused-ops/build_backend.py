"""setuptools' build backend, with the installed torch visible to the build.

pip builds in an isolated environment that holds only the ``build-system.requires`` packages. A
PyTorch extension must be compiled against the very torch it will be loaded with (its C++ ABI is
not stable across releases), and that torch is the one installed in the environment pip installs
into. pip runs this backend with that environment's interpreter, so its site-packages are known
here: they are added at the end of ``sys.path`` with their ``.pth`` files (the build's own
setuptools and ninja still come first). ``pip install --no-build-isolation`` needs none of this and works too.
"""
from __future__ import annotations

import site
import sys
import sysconfig

for _path in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                            *(site.getsitepackages() if hasattr(site, "getsitepackages") else [])]):
    if _path not in sys.path:
        site.addsitedir(_path)

from setuptools.build_meta import *  # noqa: E402,F401,F403  (the hooks pip calls)
from setuptools.build_meta import __all__  # noqa: E402,F401
