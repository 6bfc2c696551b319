"""Build the compiled protocol core, fastsio._ext._core, from _ext/_core.pyx.

A normal build (``pip install .``, ``python -m build``) is a release build: optimised, no debug
information, no run path into the build machine's Python, so the wheel carries nothing of the
machine that built it (``make dist-check`` verifies this on the built extension).
``FASTSIO_DEBUG=1`` or ``FASTSIO_SANITIZE=address,undefined`` make an instrumented build for
local testing (``make asan``); never distribute one.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

DEBUG = os.environ.get("FASTSIO_DEBUG") == "1"
SANITIZE = os.environ.get("FASTSIO_SANITIZE")  # e.g. "address,undefined"

# CPython's own CFLAGS (sysconfig) come first and often hold -g; -g0 after them drops the debug
# information, which would otherwise record the absolute source and build paths.
extra_compile_args = ["-O0", "-g3"] if DEBUG or SANITIZE else ["-O2", "-g0"]
extra_link_args = []
if SANITIZE:
    extra_compile_args += [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer"]
    extra_link_args += [f"-fsanitize={SANITIZE}"]

CYTHON_DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
}


class build_ext(_build_ext):
    """Cythonize when the extension is built, not whenever setup.py runs.

    Making an sdist then needs no Cython run and ships the sources (``_ext/*.pyx``, ``*.pxi``,
    see MANIFEST.in), not a generated ``_core.c`` that could go stale against them.
    """

    def finalize_options(self) -> None:
        from Cython.Build import cythonize

        self.distribution.ext_modules = cythonize(
            self.distribution.ext_modules,
            compiler_directives=CYTHON_DIRECTIVES,
            include_path=["_ext"],
        )
        super().finalize_options()

    def build_extensions(self) -> None:
        # Some Pythons (pyenv's, for one) link extensions with -Wl,-rpath,<their lib dir>: an
        # absolute path of the build machine that the extension never needs (it links no
        # libpython). Drop it so the wheel is the same wherever it was built.
        linker = self.compiler.linker_so
        self.compiler.linker_so = [arg for arg in linker if not arg.startswith("-Wl,-rpath")]
        super().build_extensions()


ext = Extension(
    "fastsio._ext._core",
    ["_ext/_core.pyx"],
    extra_compile_args=extra_compile_args,
    extra_link_args=extra_link_args,
)

setup(
    # Instrumented builds get a build directory of their own: setuptools reuses an up-to-date
    # extension from build/, and a normal `pip install .` must never pick up a sanitizer one.
    options={"build": {"build_base": "build-sanitize"}} if DEBUG or SANITIZE else {},
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
)
