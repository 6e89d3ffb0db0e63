"""Which free agent a queue offers a contact to: one ``FreeIndex`` per queue, ordered by its strategy.

A ``FreeIndex`` holds the queue's agents who can take an offer now (``AgentRec.has_capacity``)
and picks one in ``pick(accept)``: the first agent in the strategy's order that ``accept`` admits
(the contact's own skills, an agent just refused, ...). Costs, with n free agents in the queue:

* heap strategies (longest-idle, fewest-calls, linear, best-proficiency): O(log n) per add and
  per pick, lazy deletion (an entry is stale once its agent left or was re-listed; the heap is
  rebuilt when stale entries outnumber live ones);
* round-robin: a sorted list and a memory of the last agent offered; bisect, O(log n) + a memmove;
* random: a list with swap-removal, O(1); weighted-random: a Fenwick tree of weights, O(log n);
* ring-all: every free agent (``pick_all``).

``choose`` is the same order over an arbitrary candidate list: the slow path for contacts whose
candidates are not simply the queue's agents (relaxed skills, widened queues). The exact
semantics and the Asterisk / FreeSWITCH counterparts are in docs/routing.md.

``Dispatch`` is the part of the Router that pairs them: ``_settle`` after every operation gives
contacts that became offerable to the best free agent (``_dispatch_contact``, by strategy) and
agents who became free the best contact they may serve (``_dispatch_agent``: preferred-agent
holds first, then queue priority, then the line's order); routing/router.py composes it.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .agents import AgentRec, meets
from .effects import Effect
from .model import Strategy
from .waiting import Entry, QueueLine, Waiting, scan

Out = list[Effect]

Accept = Callable[[AgentRec], bool]
HEAP_STRATEGIES = frozenset({"longest-idle", "fewest-calls", "linear", "best-proficiency"})
RANDOM_TRIES = 8        # random picks rejected by ``accept`` before falling back to a filtered list


def proficiency(rec: AgentRec, skills: Mapping[str, int]) -> int:
    """best-proficiency's score: the sum of the agent's levels in the queue's skills."""
    return sum(rec.spec.skills.get(name, 0) for name in skills)


def order_key(strategy: Strategy, rec: AgentRec, skills: Mapping[str, int]) -> tuple[Any, ...]:
    """The ascending sort key of the deterministic strategies (the agent id always breaks ties)."""
    if strategy == "longest-idle":
        return (rec.idle_since, rec.id)
    if strategy == "fewest-calls":
        return (rec.calls, rec.idle_since, rec.id)
    if strategy == "best-proficiency":
        return (-proficiency(rec, skills), rec.idle_since, rec.id)
    return (rec.spec.order, rec.id)     # linear, round-robin (the circle), ring-all (the ringing order)


def weighted_choice(rng: random.Random, recs: list[AgentRec]) -> AgentRec:
    total = sum(r.spec.weight for r in recs)
    point = rng.randrange(total)
    for rec in recs:
        point -= rec.spec.weight
        if point < 0:
            return rec
    return recs[-1]


def choose(strategy: Strategy, candidates: Iterable[AgentRec], skills: Mapping[str, int],
           rng: random.Random, last: tuple[int, str] | None = None) -> AgentRec | None:
    """The strategy's pick among ``candidates`` (ring-all: the first in ringing order)."""
    recs = sorted(candidates, key=lambda r: (r.spec.order, r.id))
    if not recs:
        return None
    if strategy == "random":
        return rng.choice(recs)
    if strategy == "weighted-random":
        return weighted_choice(rng, recs)
    if strategy == "round-robin":
        if last is not None:
            for rec in recs:
                if (rec.spec.order, rec.id) > last:
                    return rec
        return recs[0]
    if strategy == "ring-all":
        return recs[0]
    return min(recs, key=lambda r: order_key(strategy, r, skills))


class _Fenwick:
    """Weights by slot with prefix sums: weighted sampling in O(log n)."""

    def __init__(self) -> None:
        self.size = 16
        self.tree = [0] * (self.size + 1)
        self.weights: list[int] = [0] * self.size
        self.total = 0

    def set(self, slot: int, weight: int) -> None:
        if slot >= self.size:
            self._grow(slot + 1)
        delta = weight - self.weights[slot]
        if not delta:
            return
        self.weights[slot] = weight
        self.total += delta
        i = slot + 1
        while i <= self.size:
            self.tree[i] += delta
            i += i & -i

    def _grow(self, need: int) -> None:
        while self.size < need:
            self.size *= 2
        self.weights += [0] * (self.size - len(self.weights))
        self.tree = [0] * (self.size + 1)
        for slot, weight in enumerate(self.weights):   # O(n) build
            self.tree[slot + 1] += weight
            parent = slot + 1 + ((slot + 1) & -(slot + 1))
            if parent <= self.size:
                self.tree[parent] += self.tree[slot + 1]

    def find(self, point: int) -> int:
        """The slot whose cumulative range holds ``point`` (0 <= point < total)."""
        pos, step = 0, self.size
        while step:
            nxt = pos + step
            if nxt <= self.size and self.tree[nxt] <= point:
                pos = nxt
                point -= self.tree[nxt]
            step //= 2
        return pos


class FreeIndex:
    """The free agents of one queue in the order of its strategy."""

    def __init__(self, strategy: Strategy, skills: Mapping[str, int], rng: random.Random) -> None:
        self.strategy = strategy
        self.skills = dict(skills)
        self.rng = rng
        self.members: dict[str, AgentRec] = {}
        self.last: tuple[int, str] | None = None          # round-robin's memory (kept across rebuilds)
        self._heap: list[tuple[Any, ...]] = []
        self._ring: list[tuple[int, str]] = []            # round-robin
        self._list: list[AgentRec] = []                   # random
        self._pos: dict[str, int] = {}
        self._fenwick = _Fenwick()                        # weighted-random
        self._slot: dict[str, int] = {}
        self._by_slot: list[str] = []

    def __len__(self) -> int:
        return len(self.members)

    def add(self, rec: AgentRec) -> None:
        if rec.id in self.members:
            self.discard(rec)
        self.members[rec.id] = rec
        strategy = self.strategy
        if strategy in HEAP_STRATEGIES:
            heapq.heappush(self._heap, (*order_key(strategy, rec, self.skills), rec.free_epoch))
            if len(self._heap) > 2 * len(self.members) + 64:
                self._rebuild_heap()
        elif strategy == "round-robin":
            insort(self._ring, (rec.spec.order, rec.id))
        elif strategy == "random":
            self._pos[rec.id] = len(self._list)
            self._list.append(rec)
        elif strategy == "weighted-random":
            slot = self._slot.get(rec.id)
            if slot is None:
                slot = self._slot[rec.id] = len(self._by_slot)
                self._by_slot.append(rec.id)
            self._fenwick.set(slot, rec.spec.weight)

    def discard(self, rec: AgentRec) -> None:
        if self.members.pop(rec.id, None) is None:
            return
        strategy = self.strategy
        if strategy == "round-robin":
            key = (rec.spec.order, rec.id)
            i = bisect_left(self._ring, key)
            if i < len(self._ring) and self._ring[i] == key:
                del self._ring[i]
        elif strategy == "random":
            i = self._pos.pop(rec.id)
            last = self._list.pop()
            if last is not rec:
                self._list[i] = last
                self._pos[last.id] = i
        elif strategy == "weighted-random":
            self._fenwick.set(self._slot[rec.id], 0)
        # heap strategies: the entry goes stale (lazy deletion)

    def remember(self, rec: AgentRec) -> None:
        """An offer went to ``rec`` in this queue: round-robin continues after them."""
        self.last = (rec.spec.order, rec.id)

    def pick(self, accept: Accept) -> AgentRec | None:
        """The first free agent in strategy order whom ``accept`` admits (ring-all: the first of all)."""
        if not self.members:
            return None
        strategy = self.strategy
        if strategy in HEAP_STRATEGIES:
            return self._pick_heap(accept)
        if strategy == "round-robin":
            ring = self._ring
            start = bisect_right(ring, self.last) if self.last is not None else 0
            for i in range(len(ring)):
                rec = self.members[ring[(start + i) % len(ring)][1]]
                if accept(rec):
                    return rec
            return None
        if strategy == "random":
            for _ in range(RANDOM_TRIES):
                rec = self._list[self.rng.randrange(len(self._list))]
                if accept(rec):
                    return rec
            ok = [r for r in self._list if accept(r)]
            return self.rng.choice(ok) if ok else None
        if strategy == "weighted-random":
            for _ in range(RANDOM_TRIES):
                rec = self.members[self._by_slot[self._fenwick.find(self.rng.randrange(self._fenwick.total))]]
                if accept(rec):
                    return rec
            ok = [r for r in self.members.values() if accept(r)]
            return weighted_choice(self.rng, ok) if ok else None
        return next((r for r in self.pick_all(accept)), None)

    def pick_all(self, accept: Accept) -> list[AgentRec]:
        """Every free agent ``accept`` admits, in ringing order (ring-all)."""
        return sorted((r for r in self.members.values() if accept(r)), key=lambda r: (r.spec.order, r.id))

    def _valid(self, entry: tuple[Any, ...]) -> AgentRec | None:
        rec = self.members.get(entry[-2])
        return rec if rec is not None and rec.free_epoch == entry[-1] else None

    def _pick_heap(self, accept: Accept) -> AgentRec | None:
        heap = self._heap
        skipped: list[tuple[Any, ...]] = []
        found = None
        while heap:
            rec = self._valid(heap[0])
            if rec is None:
                heapq.heappop(heap)
                continue
            if accept(rec):
                found = rec
                break
            skipped.append(heapq.heappop(heap))
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def _rebuild_heap(self) -> None:
        self._heap = [(*order_key(self.strategy, r, self.skills), r.free_epoch) for r in self.members.values()]
        heapq.heapify(self._heap)


class Dispatch:
    """Pairing free agents and offerable contacts (a mixin: routing/router.py holds the state it uses)."""

    _rng: random.Random
    _agents: dict[str, AgentRec]
    _queues: dict[str, QueueLine]
    _contacts: dict[str, Waiting]
    _free: dict[str, AgentRec]
    _held: dict[str, dict[str, Waiting]]
    _widened: dict[str, dict[str, list[Entry]]]
    _relaxed_queues: set[str]
    _touched_agents: dict[str, AgentRec]
    _touched_contacts: dict[str, Waiting]
    _avoid: dict[str, set[str]]

    if TYPE_CHECKING:
        def _sync_free(self, rec: AgentRec) -> None: ...
        def _make_offer(self, w: Waiting, rec: AgentRec, now: float, out: Out) -> None: ...
        def _valid_entry(self, entry: Entry) -> Waiting | None: ...

    def _touch_agent(self, rec: AgentRec) -> None:
        self._touched_agents[rec.id] = rec

    def _touch_contact(self, w: Waiting) -> None:
        self._touched_contacts[w.id] = w

    def _candidate(self, rec: AgentRec, w: Waiting) -> bool:
        """May ``rec`` serve ``w`` by skills (its requirements, or an added queue's)?"""
        if meets(rec.spec.skills, w.req):
            return True
        return bool(w.widened) and not rec.queues.isdisjoint(w.widened)

    def _rank(self, w: Waiting, now: float) -> tuple[float, float, float, int]:
        line = self._queues[w.queue]
        return (-line.spec.priority, -line.effective(w, now), w.entered_at, w.seq)

    def _settle(self, now: float, out: Out) -> None:
        """Pair whatever became free or offerable: contacts first (by strategy), then agents (by priority);
        a contact an agent just let go goes back to that agent only if nobody else takes either."""
        while self._touched_agents or self._touched_contacts:
            agents = list(self._touched_agents.values())
            contacts = sorted(self._touched_contacts.values(), key=lambda w: self._rank(w, now))
            self._touched_agents.clear()
            self._touched_contacts.clear()
            for rec in agents:
                self._sync_free(rec)
            for w in contacts:
                if self._contacts.get(w.id) is w:
                    self._dispatch_contact(w, now, out, w.refused)
            for rec in agents:
                if self._agents.get(rec.id) is rec:
                    self._dispatch_agent(rec, now, out, self._avoid.get(rec.id, set()))
            for w in contacts:
                if w.refused and self._contacts.get(w.id) is w and not self._queues[w.queue].ring_all:
                    self._dispatch_contact(w, now, out, set())
                    w.refused.clear()
            self._avoid.clear()

    def _dispatch_contact(self, w: Waiting, now: float, out: Out, exclude: set[str]) -> None:
        """Offer ``w`` to the best free agent(s) of its queue's strategy."""
        line = self._queues[w.queue]
        if w.phase == "held":
            rec = self._free.get(w.contact.preferred_agent)
            if rec is not None and rec.id not in exclude and self._candidate(rec, w):
                self._make_offer(w, rec, now, out)
            return
        if not (w.phase == "waiting" or (w.phase == "ringing" and line.ring_all)):
            return
        ringing = set(w.offers.values())

        def accept(rec: AgentRec) -> bool:
            return rec.id not in exclude and rec.id not in ringing and self._candidate(rec, w)

        plain = not w.relaxed and not w.widened
        if line.ring_all:
            for rec in line.free.pick_all(accept) if plain else sorted(
                    self._pool(w, line, accept), key=lambda r: (r.spec.order, r.id)):
                self._make_offer(w, rec, now, out)
            return
        pref = self._free.get(w.contact.preferred_agent)
        if pref is not None and accept(pref):
            self._make_offer(w, pref, now, out)
            return
        if plain:
            chosen = line.free.pick(accept)
        else:
            chosen = choose(line.spec.strategy, self._pool(w, line, accept), line.spec.skills, self._rng,
                            line.free.last)
        if chosen is not None:
            self._make_offer(w, chosen, now, out)

    def _pool(self, w: Waiting, line: QueueLine, accept: Any) -> list[AgentRec]:
        """Every free candidate of an escalated contact (the slow path)."""
        if w.relaxed:
            return [rec for rec in self._free.values() if accept(rec)]
        pool = dict(line.free.members)
        for q in w.widened:
            other = self._queues.get(q)
            if other is not None:
                pool.update(other.free.members)
        return [rec for rec in pool.values() if accept(rec)]

    def _dispatch_agent(self, rec: AgentRec, now: float, out: Out, avoid: set[str]) -> None:
        """While ``rec`` may take an offer, give them the best contact they may serve."""
        while rec.has_capacity():
            w = self._best_for(rec, now, avoid)
            if w is None and avoid:
                again = [c for c in (self._contacts.get(cid) for cid in avoid)
                         if c is not None and self._acceptable(rec, c)]
                w = min(again, key=lambda c: self._rank(c, now)) if again else None
            if w is None:
                return
            self._make_offer(w, rec, now, out)

    def _acceptable(self, rec: AgentRec, w: Waiting) -> bool:
        line = self._queues[w.queue]
        if w.phase == "held":
            return w.contact.preferred_agent == rec.id and self._candidate(rec, w)
        if not (w.phase == "waiting" or (w.phase == "ringing" and line.ring_all)):
            return False
        if w.offers and (rec.id in w.refused or rec.id in w.offers.values()):
            return False
        return self._candidate(rec, w)

    def _best_for(self, rec: AgentRec, now: float, avoid: set[str]) -> Waiting | None:
        held = self._held.get(rec.id)
        if held:
            mine = [w for w in held.values() if w.id not in avoid and self._candidate(rec, w)]
            if mine:
                return min(mine, key=lambda w: self._rank(w, now))
        best: Waiting | None = None
        best_rank: tuple[float, float, float, int] | None = None

        def accept(w: Waiting) -> bool:
            if w.id in avoid:
                return False
            if w.offers and (rec.id in w.refused or rec.id in w.offers.values()):
                return False
            return self._candidate(rec, w)

        def consider(w: Waiting | None) -> None:
            nonlocal best, best_rank
            if w is not None:
                rank = self._rank(w, now)
                if best_rank is None or rank < best_rank:
                    best, best_rank = w, rank

        valid = self._valid_entry
        for q in rec.queues:
            line = self._queues[q]
            if line.heap:
                consider(scan(line.heap, valid, accept))
            sub = self._widened.get(q)
            if sub:
                for heap in sub.values():
                    consider(scan(heap, valid, accept))
        for q in list(self._relaxed_queues):
            if q in rec.queues:
                continue
            line = self._queues[q]
            consider(scan(line.relaxed, valid, accept))
            if not line.relaxed:
                self._relaxed_queues.discard(q)
        return best
