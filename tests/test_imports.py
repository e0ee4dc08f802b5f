"""What a peer loads: a peer without ``--admin`` that does not enroll never
imports Twisted's web stack (a few megabytes of every idle peer's memory,
issue 6), and the enrollment package still offers its client's names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO, sourceEnv

_PROBE = """
import sys
import reload.tap, reload.node, reload.peer, reload.enrollment.protocol
web = sorted(m for m in sys.modules if m.startswith("twisted.web"))
print(",".join(web))
"""


def test_a_peer_imports_no_web_stack_until_it_needs_one() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True, text=True, cwd=REPO, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_the_enrollment_package_gives_the_client_names_on_use() -> None:
    import reload.enrollment as enrollment
    from reload.enrollment.client import obtainIdentity
    from reload.enrollment.protocol import EnrollmentError

    assert enrollment.obtainIdentity is obtainIdentity
    assert enrollment.EnrollmentError is EnrollmentError
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        enrollment.nothing  # noqa: B018
