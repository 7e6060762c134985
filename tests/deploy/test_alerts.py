"""The alerts of deploy/k8s/base/prometheusrule.yaml: `promtool check rules` and `promtool test rules`.

The rules are taken from the PrometheusRule manifest itself (the one source) and written as a plain rule file
beside a copy of tests/deploy/alerts_test.yaml, which has a firing case for every alert. promtool comes from
Debian's `prometheus` package (`make tools` installs it when missing and run as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy/k8s/base/prometheusrule.yaml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")


def rule_groups() -> list[dict[str, Any]]:
    """The rule groups of the PrometheusRule manifest."""
    rule = yaml.safe_load(MANIFEST.read_text())
    assert rule["kind"] == "PrometheusRule"
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alert_names() -> set[str]:
    return {r["alert"] for group in rule_groups() for r in group["rules"] if "alert" in r}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        assert not os.environ.get("CI"), "promtool is missing in CI: `make test` installs Debian's prometheus package as root"
        pytest.skip("promtool is missing: `sudo apt-get install -y --no-install-recommends prometheus` (make tools does it)")
    return found


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


def test_the_rules_pass_promtool_and_their_unit_tests(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    assert f"SUCCESS: {len(alert_names())} rules found" in run(promtool, "check", "rules", str(rules))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    assert "SUCCESS" in run(promtool, "test", "rules", str(tmp_path / UNIT_TESTS.name))


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    fires = {c["alertname"] for c in checks if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in checks if not c.get("exp_alerts")}
    assert fires == alert_names(), f"alerts without a firing case: {sorted(alert_names() - fires)}"
    assert quiet == alert_names(), f"alerts without a case where they stay quiet: {sorted(alert_names() - quiet)}"
    for group in rule_groups():
        for rule in group["rules"]:
            assert rule["annotations"]["runbook"].startswith("docs/operations.md#"), f"{rule['alert']} names no runbook"
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert anchor == rule["alert"].lower(), f"{rule['alert']}: runbook anchor {anchor}"
