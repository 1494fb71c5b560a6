"""The layering rules (docs/architecture.md, "Layers") as import-linter contracts.

``lint-imports`` reads ``[tool.importlinter]`` in pyproject.toml. These tests run it on the
project, check that every ``gtvision`` module is placed on one side of the rules, and prove
that each contract bites: a copy of the project with one forbidden (lazy) import added
must fail the contract it breaks.
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract for contract in CONFIG["contracts"]}


def lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run import-linter (the one installed next to this Python) in ``cwd``."""
    binary = Path(sys.executable).parent / "lint-imports"
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "importlinter.cli"]
    result = subprocess.run(
        [*command, "--no-cache", "--no-logo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )
    print(result.stdout, result.stderr, sep="\n")
    return result


def test_the_project_keeps_its_layering_contracts():
    result = lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_every_gtvision_module_is_either_kernel_or_wiring():
    """A new gtvision module must be placed: in the kernel (imports no app) or in the
    dashboard / project wiring (which apps must not import)."""
    kernel = set(CONTRACTS["kernel"]["source_modules"])
    wiring = {name for name in CONTRACTS["wiring"]["forbidden_modules"] if "." in name}
    modules = {f"gtvision.{info.name}" for info in pkgutil.iter_modules([str(ROOT / "gtvision")])}

    assert not kernel & wiring
    assert modules - kernel - wiring == set()
    assert (kernel | wiring) - modules == set()  # no stale names


def test_roles_live_in_the_kernel_and_stay_importable_from_admin_ctx():
    from admin_ctx.models import Role as AppRole
    from admin_ctx.models import User
    from gtvision.roles import Role

    assert AppRole is Role
    assert User._meta.get_field("role").choices == Role.choices


def _copy_project(destination: Path) -> None:
    for package in CONFIG["root_packages"]:
        shutil.copytree(
            ROOT / package,
            destination / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")


# (contract id, file of the copy, a forbidden import appended to it, expected report line)
VIOLATIONS = [
    ("kernel", "gtvision/errors.py", "from lpr import models", "gtvision.errors is not allowed"),
    ("kernel", "gtvision/tenancy.py", "from gtvision import urls", "gtvision.tenancy is not"),
    ("apps", "admin_ctx/audit.py", "from recordings import models", "admin_ctx is not allowed"),
    ("apps", "cidades/validators.py", "from lpr import plates", "cidades is not allowed"),
    ("media", "streaming/sourcefiles.py", "import django.conf", "streaming.sourcefiles is not"),
    ("media", "recordings/media.py", "from streaming import models", "recordings.media is not"),
    ("wiring", "recordings/queries.py", "from gtvision import dashboard", "recordings is not"),
    ("wiring", "cidades/services.py", "import testcamera", "cidades is not allowed"),
]


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> subprocess.CompletedProcess:
    """``lint-imports`` on a copy of the project with every forbidden import of VIOLATIONS
    added (lazily, inside a function: that counts as much as one at the top of a module);
    the unmodified project passes (test_the_project_keeps_its_layering_contracts)."""
    copy = tmp_path_factory.mktemp("layers")
    _copy_project(copy)
    for _contract, path, statement, _report in VIOLATIONS:
        target = copy / path
        target.write_text(
            target.read_text() + f"\n\ndef _layers_probe():\n    {statement}  # noqa\n"
        )
    return lint_imports(copy)


@pytest.mark.parametrize(("contract", "path", "statement", "report"), VIOLATIONS)
def test_each_contract_breaks_on_a_forbidden_import(probed, contract, path, statement, report):
    assert probed.returncode == 1, probed.stdout
    assert report in probed.stdout, probed.stdout
    # every contract is reported broken (names may wrap: the summary line counts them)
    assert f"0 kept, {len(CONTRACTS)} broken" in probed.stdout, probed.stdout
