"""Build the compiled protocol core, fastsio._ext._core, from _ext/_core.pyx."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTSIO_DEBUG") == "1"
SANITIZE = os.environ.get("FASTSIO_SANITIZE")  # e.g. "address,undefined"

extra_compile_args = ["-O0", "-g3"] if DEBUG or SANITIZE else ["-O2"]
extra_link_args = []
if SANITIZE:
    extra_compile_args += [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer"]
    extra_link_args += [f"-fsanitize={SANITIZE}"]

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
    ext_modules=cythonize(
        [ext],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
        include_path=["_ext"],
    ),
)
