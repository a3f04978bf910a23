"""Print how many fuzz cases ran (by command) in the terminal summary."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook signature
    from tests.fuzz._fuzz import COUNTS

    if COUNTS:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items()))
        terminalreporter.write_line(f"fuzz cases run: {sum(COUNTS.values())} ({parts})")
