"""Test a flow without telephony: feed events, get the actions back (like pipecat's run_test)."""

from __future__ import annotations

from collections.abc import Iterable

from .flow import Flow
from .machine import Action, Event, FlowMachine


def run_flow(flow: Flow, events: Iterable[Event]) -> list[list[Action]]:
    """Feed ``events`` to a fresh machine; return the actions produced by each event in turn."""
    machine = FlowMachine(flow)
    return [machine.receive(event) for event in events]
