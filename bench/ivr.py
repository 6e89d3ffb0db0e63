"""IVR interpreter benchmark: events per second on a 50-node flow, and the memory of one running call.

    .venv/bin/python bench/ivr.py [--calls 2000] [--rounds 7]

The flow (built here as YAML and loaded through ivr.flow.parse_flow, so it is a valid flow) has
50 nodes of every kind: a barge-in welcome, a language menu, business hours and caller-number
branches, a main menu, a sensitive collect, an HTTP lookup, a speech menu, second-level menus,
set / goto loops with max_visits, a subflow (a 3-node survey), queues, voicemail, a transfer and
hang-ups. Eight scripted callers (keys, speech, silences that time out, a failed lookup, a
hang-up in the middle) are run once through ivr.testing.simulate, which records every event the
machine heard. Since the machine is deterministic, replaying those events into a fresh
``FlowMachine`` reproduces the same call, so the timed loop is the interpreter alone: per round,
``--calls`` calls (the scripts in turn), each a new machine fed its script's events.

Printed: interpreter events per second (median over ``--rounds``; the per-round figures), the
cost per event and per call, and the same-run floor: the same loop into a machine-shaped object
whose ``receive`` does nothing (the cost of the loop and the call itself). Memory: tracemalloc's
count of the bytes allocated and still held by creating one machine and running it to the middle
of the longest script (caches of templates and conditions warmed beforehand, the flow itself not
counted: it is shared by every call on its version). Results: bench/results/ivr.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ivr import events as ev  # noqa: E402
from ivr.flow import parse_flow  # noqa: E402
from ivr.machine import FlowMachine  # noqa: E402
from ivr.nodes import Flow  # noqa: E402
from ivr.testing import HttpReply, simulate  # noqa: E402

FLOW = """\
name: bench
start: welcome
variables:
  account: {type: string, sensitive: true}
  customer: string
  balance: {type: number, default: 0}
  vip: {type: boolean, default: false}
  topic: string
  visits: {type: number, default: 0}
hours:
  office:
    timezone: Europe/London
    weekly: {mon-fri: "08:00-20:00", sat: "09:00-13:00"}
    holidays: ["2026-12-25"]
on_error: sorry
nodes:
  welcome: {type: play, say: "Welcome to the benchmark company.", barge_in: true, next: language}
  language:
    type: menu
    prompt: "For English press 1. 中文请按2。"
    options: {"1": set_en, "2": set_zh}
    timeout: 4
    retries: 1
    fallback: set_en
  set_en: {type: set, values: {language: en}, next: hours}
  set_zh: {type: set, values: {language: zh}, next: hours}
  hours:
    type: branch
    rules:
      - {if: "not open('office')", next: closed}
      - {if: "caller_number startswith '+44'", next: uk_note}
    else: greet
  uk_note: {type: play, say: "Calls from the UK are free.", next: greet}
  greet:
    type: branch
    rules:
      - {if: "caller_name", next: hello_named}
    else: main
  hello_named: {type: play, say: "Hello {caller_name}.", barge_in: true, next: main}
  closed: {type: play, say: "We are closed. Leave a message.", next: after_hours}
  after_hours: {type: voicemail, mailbox: after-hours, max_length: 60, next: goodbye}
  main:
    type: menu
    prompt: "Account 1, tell us 2, services 3, information 4, survey 5, agent 0."
    invalid_prompt: "That is not an option."
    timeout_prompt: "Please choose."
    options: {"1": account, "2": speech, "3": services, "4": info1, "5": survey_intro, "0": agent_intro}
    timeout: 5
    retries: 2
    fallback: agents
  account:
    type: collect
    prompt: "Your account number, then hash."
    variable: account
    min_length: 4
    max_length: 8
    pattern: "[0-9]+"
    sensitive: true
    retries: 2
    next: lookup
    fallback: agents
  lookup:
    type: http
    url: "http://crm.test/accounts/{account}"
    headers: {X-Caller: "{caller_number}"}
    results: {customer: customer.name, balance: balance, vip: vip}
    next: vip_check
    error: lookup_failed
  lookup_failed: {type: play, say: "We could not find that account.", next: agents}
  vip_check:
    type: branch
    rules:
      - {if: "vip", next: vip_line}
      - {if: "balance > 100", next: rich}
    else: poor
  vip_line: {type: transfer, target: "sip:vip@pbx.test", prompt: "Connecting you to your manager.", error: agents}
  rich: {type: play, say: "Hello {customer}, your balance is {balance}.", next: after_account}
  poor: {type: play, say: "Hello {customer}, you owe {balance}.", next: after_account}
  after_account:
    type: menu
    prompt: "Back to the menu 1, goodbye 2."
    options: {"1": back_to_main, "2": goodbye}
    fallback: goodbye
  back_to_main: {type: goto, target: main, max_visits: 3, otherwise: goodbye}
  speech:
    type: speech
    prompt: "Say sales, billing or support."
    phrases: {sales: q_sales, billing: q_billing, support: q_support}
    options: {"0": agents}
    variable: topic
    confidence: 0.5
    retries: 1
    no_match: agents
    no_input: agents
  q_sales: {type: queue, queue: sales, skills: {sales: 2}, no_agents: busy, next: goodbye}
  q_billing: {type: queue, queue: billing, skills: {billing: 1}, priority: 1, no_agents: busy, next: goodbye}
  q_support: {type: queue, queue: support, skills: {support: 1}, no_agents: busy, next: goodbye}
  agents: {type: queue, queue: general, no_agents: busy, next: goodbye}
  busy: {type: voicemail, prompt: "Everyone is busy. Leave a message.", mailbox: general, max_length: 60,
         next: goodbye}
  services:
    type: menu
    prompt: "Opening hours 1, address 2, prices 3, jobs 4, press 5, main menu 9."
    options: {"1": s_hours, "2": s_address, "3": s_prices, "4": s_jobs, "5": s_press, "9": back_to_main}
    retries: 1
    fallback: back_to_main
  s_hours: {type: play, say: "We are open 8 to 8 on weekdays.", next: count}
  s_address: {type: play, say: "We are at 1 Main Street.", next: count}
  s_prices: {type: play, say: "Prices start at 10 dollars.", next: count}
  s_jobs: {type: play, say: "See our website for jobs.", next: count}
  s_press: {type: play, say: "Press enquiries: press@example.com.", next: count}
  count: {type: set, values: {visits: "{visits}"}, next: again}
  again: {type: goto, target: services, max_visits: 4, otherwise: main}
  info1: {type: play, say: "Information, part one.", barge_in: true, next: info2}
  info2: {type: play, say: "Information, part two.", barge_in: true, next: info3}
  info3: {type: play, say: "Information, part three.", barge_in: true, next: info4}
  info4: {type: play, say: "Information, part four.", barge_in: true, next: info5}
  info5: {type: play, say: "Information, part five.", barge_in: true, next: info_set}
  info_set: {type: set, values: {topic: info}, next: info_branch}
  info_branch:
    type: branch
    rules:
      - {if: "language == 'zh'", next: info_zh}
    else: info_more
  info_zh: {type: play, say: "谢谢。", next: main}
  info_more:
    type: menu
    prompt: "Hear it again 1, main menu 2."
    options: {"1": info_again, "2": main}
    fallback: main
  info_again: {type: goto, target: info1, max_visits: 2, otherwise: main}
  survey_intro: {type: play, say: "Three quick questions.", next: survey}
  survey: {type: subflow, flow: survey, next: thanks}
  agent_intro: {type: play, say: "An agent will be with you shortly.", next: agents}
  thanks: {type: play, say: "Thank you for your feedback.", next: main}
  sorry: {type: hangup, prompt: "Sorry, something went wrong."}
  goodbye: {type: hangup, prompt: "Thank you for calling. Goodbye."}
"""

SURVEY = """\
name: survey
start: rate
nodes:
  rate:
    type: menu
    prompt: "Rate us from 1 to 3."
    options: {"1": done, "2": done, "3": done}
    retries: 0
    fallback: done
  done: {type: return}
"""

CRM = [HttpReply("http://crm.test/accounts/1111*", json={"customer": {"name": "Ann"}, "balance": 250, "vip": False}),
       HttpReply("http://crm.test/accounts/2222*", json={"customer": {"name": "Bo"}, "balance": -5, "vip": False}),
       HttpReply("http://crm.test/accounts/3333*", json={"customer": {"name": "Cy"}, "balance": 1, "vip": True}),
       HttpReply("http://crm.test/accounts/*", status=404)]

SCRIPTS: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("account, rich, back, services x2, agent", [{"press": "1"}, {"press": "1"}, {"press": "1111#"}, {"press": "1"},
     {"press": "3"}, {"press": "1"}, {"press": "2"}, {"press": "9"}, {"press": "0"}], {}),
    ("account typed slowly, poor, goodbye", [{"press": "1"}, {"press": "1"}, {"press": "2", "gap": 1},
     {"press": "222#", "gap": 1}, {"press": "2"}], {}),
    ("vip transfer", [{"press": "1"}, {"press": "1"}, {"press": "3333#"}], {}),
    ("unknown account, lookup fails", [{"press": "1"}, {"press": "1"}, {"press": "9999#"}], {"queue": "no_agents"}),
    ("speech: billing", [{"press": "1"}, {"press": "2"}, {"say": "billing", "confidence": 0.8}], {}),
    ("speech mumbled twice, then voicemail", [{"press": "2"}, {"press": "2"}, {"say": "pizza"}, {"say": "pasta"},
     {"wait": 30}, {"press": "#"}], {"queue": "no_agents"}),
    ("information twice, survey, silence", [{"press": "1"}, {"press": "4"}, {"press": "1"}, {"press": "1"},
     {"press": "2"}, {"press": "5"}, {"press": "3"}, {"wait": 60}], {"caller": {"number": "+441234"}}),
    ("invalid keys, timeouts, hang-up in the menu", [{"wait": 5}, {"press": "7"}, {"press": "8"}, {"wait": 5},
     {"press": "3"}, {"press": "4"}, {"hangup": True}], {}),
]


class NullMachine:
    """The floor: a machine-shaped object whose receive does nothing."""

    def __init__(self, flow: Flow, subflows: dict[str, Flow]) -> None:
        self.flow = flow

    def receive(self, event: ev.Event) -> list[Any]:
        return []


def record(flow: Flow, subflows: dict[str, Flow]) -> list[tuple[str, list[ev.Event], list[str]]]:
    """Each script's events, via the simulated driver; checks that a replay reproduces the call."""
    out = []
    for name, script, kw in SCRIPTS:
        run = simulate(flow, script, subflows, http=CRM, **kw)
        machine = FlowMachine(flow, subflows)
        replayed = [a for e in run.events for a in machine.receive(e)]
        if replayed != run.actions:
            raise SystemExit(f"replay of {name!r} differs from the recorded call")
        out.append((name, run.events, run.path))
    return out


def timed(factory: Any, flow: Flow, subflows: dict[str, Flow], calls: list[list[ev.Event]], n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for i in range(n):
        machine = factory(flow, subflows)
        receive = machine.receive
        for e in calls[i % len(calls)]:
            receive(e)
    return time.perf_counter() - t0


def memory(flow: Flow, subflows: dict[str, Flow], events: list[ev.Event]) -> tuple[int, str, int]:
    half = events[: len(events) // 2]
    warm = FlowMachine(flow, subflows)
    for e in events:
        warm.receive(e)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    machine = FlowMachine(flow, subflows)
    for e in half:
        machine.receive(e)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held, machine.node or "", len(machine.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    flow = parse_flow(FLOW, "bench.yaml")
    subflows = {"survey": parse_flow(SURVEY, "survey.yaml")}
    if len(flow.nodes) != 50:
        raise SystemExit(f"the bench flow has {len(flow.nodes)} nodes, not 50")
    recorded = record(flow, subflows)
    calls = [events for _, events, _ in recorded]
    per_cycle = sum(len(c) for c in calls)
    total_events = sum(len(calls[i % len(calls)]) for i in range(args.calls))
    entered = {n for _, _, path in recorded for n in path}

    timed(FlowMachine, flow, subflows, calls, len(calls) * 10)      # warm-up
    rounds, floors = [], []
    for _ in range(args.rounds):
        rounds.append(timed(FlowMachine, flow, subflows, calls, args.calls))
        floors.append(timed(NullMachine, flow, subflows, calls, args.calls))
    rates = [total_events / t for t in rounds]
    rate = statistics.median(rates)
    floor = statistics.median(total_events / t for t in floors)
    us_event = 1e6 / rate
    us_floor = 1e6 / floor
    longest = max(calls, key=len)
    held, mid_node, traces = memory(flow, subflows, longest)

    print(f"IVR interpreter on a 50-node flow ({len(entered)} of its nodes entered by {len(SCRIPTS)} caller scripts, "
          f"{per_cycle / len(calls):.0f} events per call on average)")
    print(f"  events per second: median {rate:,.0f} over {args.rounds} rounds of {args.calls} calls "
          f"({', '.join(f'{r / 1000:.0f}k' for r in rates)})")
    print(f"  per event: {us_event:.2f} us; per call: {us_event * total_events / args.calls:.0f} us "
          f"(machine created, every event fed)")
    print(f"  floor (a receive that does nothing, same loop): {us_floor:.3f} us per event; "
          f"interpreter / floor: {us_event / us_floor:.0f}x")
    print(f"  one running flow instance: {held / 1024:.1f} KiB (tracemalloc: created and run through "
          f"{len(longest) // 2} of {len(longest)} events to node {mid_node!r}, {traces} path entries)")

    result = {
        "benchmark": "ivr",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {"calls": args.calls, "rounds": args.rounds, "flow_nodes": len(flow.nodes),
                     "scripts": [name for name, _, _ in SCRIPTS]},
        "summary": {"events_per_s_median": round(rate), "events_per_s_rounds": [round(r) for r in rates],
                    "us_per_event": round(us_event, 3), "floor_us_per_event": round(us_floor, 4),
                    "ratio_to_floor": round(us_event / us_floor, 1),
                    "events_per_call": round(per_cycle / len(calls), 1), "nodes_entered": len(entered),
                    "instance_bytes": held, "instance_mid_node": mid_node, "instance_path_entries": traces},
    }
    out = BENCH / "results" / "ivr.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
