"""The docstring conversions of docs/hooks.py (the strict docs build itself runs in `make docs`)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

pytest.importorskip("griffe")  # the docs extra; `make test` installs it

_spec = importlib.util.spec_from_file_location(
    "docs_hooks", pathlib.Path(__file__).resolve().parents[2] / "docs" / "hooks.py"
)
assert _spec is not None and _spec.loader is not None
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)


def test_literal_block_in_a_list_item_becomes_a_fenced_block() -> None:
    text = "- item text, and an example::\n\n      import x\n      x.y()\n\n- next item"
    assert hooks.fence_literal_blocks(text) == (
        "- item text, and an example:\n\n```python\nimport x\nx.y()\n```\n\n\n- next item"
    )


def test_shell_literal_block_is_fenced_as_sh_and_a_bare_marker_vanishes() -> None:
    text = "Run it:\n\n::\n\n    python -m fastsio.testing --port 0\n"
    assert hooks.fence_literal_blocks(text) == (
        "Run it:\n\n\n```sh\npython -m fastsio.testing --port 0\n```\n\n"
    )


def test_text_without_literal_blocks_is_unchanged() -> None:
    text = "Plain text: a colon, ``code`` and\n    an indented line."
    assert hooks.fence_literal_blocks(text) == text


def test_sphinx_roles_become_code_spans() -> None:
    text = "See :meth:`TestServer.on`, :class:`~fastsio.AsyncClient` and :attr:`.url`."
    assert hooks._ROLE.sub(r"``\1``", text) == (
        "See ``TestServer.on``, ``fastsio.AsyncClient`` and ``url``."
    )
