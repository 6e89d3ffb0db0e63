"""The demo flow (config/flows/demo.yaml) passes its scripted callers and loads with no warning."""

from __future__ import annotations

from pathlib import Path

from ivr.cases import run_cases
from ivr.flow import check_flow

FLOWS = Path(__file__).resolve().parents[2] / "config" / "flows"


def test_demo_flow_passes_its_cases() -> None:
    report = run_cases(FLOWS / "demo.yaml", FLOWS / "demo.cases.yaml")
    assert report.passed, report.text()
    assert "5 of 5 cases passed" in report.text()


def test_demo_flow_validates_cleanly() -> None:
    path = FLOWS / "demo.yaml"
    flow, problems = check_flow(path.read_text(), str(path), base_dir=path.parent)
    assert flow is not None and problems == [], [str(p) for p in problems]
    kinds = {n.type for n in flow.nodes.values()}
    # The demo shows it all: language choice, menus, sensitive collect, HTTP, hours, speech, queue.
    assert {"menu", "collect", "http", "branch", "speech", "queue", "voicemail", "set", "play", "hangup"} <= kinds
    assert flow.variables["account"].sensitive and "office" in flow.hours
