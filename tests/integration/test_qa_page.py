"""The /qa page in headless Chromium against a real uvicorn server, a real database and a real recording.

The recording is espeak-ng speech placed on two channels (customer left, agent right) at known times,
and the transcript rows carry those times, so the test can play it and watch the highlighted utterance
follow the audio. Screenshots go to /tmp/qa-page-*.png.
"""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from callcenter.api import ApiContext
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, UserRepo
from tests.support.browser import chromium, console, missing, screenshot, wait_for
from tests.support.site import ThreadedSite
from tests.unit.test_qa_api import (
    add_agent,
    add_call,
    add_emotion,
    add_hit,
    add_recording,
    add_score,
    add_transcript,
    add_users,
    iso,
    qa_app,
)

TOKEN = "tok-qa"
RATE = 8000
SHOTS = Path("/tmp")
# (speaker, start_s, text): what is said when; the agent speaks on the right channel.
SCRIPT = [
    ("agent", 0.3, "Thank you for calling Acme, this is Alice."),
    ("customer", 2.9, "I want a refund on my credit card."),
    ("agent", 5.3, "I can refund that today."),
    ("customer", 7.2, "Great, thank you."),
]


def _speech(text: str, tmp: Path) -> np.ndarray:
    raw, out = tmp / "raw.wav", tmp / "seg.wav"
    subprocess.run(["espeak-ng", "-s", "190", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True,
                   capture_output=True)
    with wave.open(str(out)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples) > 300)      # trim espeak's own leading and trailing silence
    return samples[loud[0]:loud[-1] + 1] if loud.size else samples


def make_call_audio(path: Path, tmp: Path) -> list[tuple[str, float, float, str]]:
    """Write the stereo WAV of SCRIPT; returns the utterances with their real start and end times."""
    parts = [(spk, start, text, _speech(text, tmp)) for spk, start, text in SCRIPT]
    total = max(start + len(s) / RATE for _, start, _, s in parts) + 0.5
    stereo = np.zeros((int(total * RATE), 2), dtype=np.int16)
    utterances = []
    for spk, start, text, s in parts:
        at = int(start * RATE)
        stereo[at:at + len(s), 0 if spk == "customer" else 1] = s
        utterances.append((spk, start, round(start + len(s) / RATE, 3), text.lower().rstrip(".")))
    for (_, _, end, _), (_, nxt, _, _) in zip(utterances, utterances[1:], strict=False):
        assert end < nxt, "the script's utterances overlap: respace SCRIPT"
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(stereo.tobytes())
    return utterances


async def seed_page(db: Database, data_dir: Path, tmp: Path) -> None:
    await add_users(db)
    await add_agent(db, "alice", "Alice Smith")
    wav = data_dir / "recordings" / "2024" / "call-1-stereo.wav"
    utterances = make_call_audio(wav, tmp)
    seconds = wave.open(str(wav)).getnframes() / RATE
    await add_call(db, "call-1", started_at=iso(14, 9, 41), seconds=seconds, caller="+15551234567")
    await add_recording(db, "call-1", "stereo", "recordings/2024/call-1-stereo.wav", seconds)
    await add_transcript(db, "call-1", utterances, duration_s=seconds)
    await add_hit(db, "call-1", "greeting", "script", "agent", 0.3, 1.5, "thank you for calling")
    await add_hit(db, "call-1", "refund_request", "billing", "customer", 3.4, 3.9, "refund")
    await add_hit(db, "call-1", "card_mention", "payment", "customer", 4.2, 4.9, "credit card")
    await add_score(db, "call-1", "standard", "greeting", 1, 1.0, "“thank you for calling” at 0:00 (agent)")
    await add_score(db, "call-1", "standard", "disclosure", 2, 0.0, "“this call is recorded” not found")
    await add_score(db, "call-1", "standard", "forbidden words", 1, 1.0, "none said")
    await add_score(db, "call-1", "standard", "talk ratio", 1, 0.8, "agent 48% of talk time")
    await add_score(db, "call-1", "standard", "empathy", 1, None, "manual item")
    await add_emotion(db, "call-1", "customer", [-0.4, -0.1, 0.3, 0.6])
    await add_emotion(db, "call-1", "agent", [0.4, 0.3, 0.5, 0.5])
    for i, (q, text) in enumerate((("support", "my internet is down again since monday"),
                                   ("sales", "i would like to upgrade my plan"),
                                   ("sales", "the card payment failed twice"))):
        cid = f"call-{i + 2}"
        await add_call(db, cid, started_at=iso(13 - i, 15, 5 * i), seconds=95 + 40 * i, agent="alice", queue=q,
                       caller=f"+1555987000{i}")
        await add_transcript(db, cid, [("customer", 1.0, 4.0, text)], duration_s=95)
        await add_score(db, cid, "standard", "greeting", 1, [1.0, 0.0, 1.0][i])
        await add_score(db, cid, "standard", "disclosure", 2, [1.0, 1.0, 0.0][i])
        await add_hit(db, cid, "r", ["outage", "upsell", "payment"][i], "customer", 1.0, 2.0, text.split()[1])


class QaServer(ThreadedSite):
    """The app with the QA routes on a thread of this process, with its own event loop."""

    label = "QA server"

    def __init__(self, data_dir: Path, tmp: Path) -> None:
        super().__init__(data_dir)
        self.tmp = tmp

    async def serve(self) -> None:
        db = await Database.open(self.data_dir)
        try:
            await seed_page(db, self.data_dir, self.tmp)
            ctx = ApiContext(calls=CallRepo(db), users=UserRepo(db), data_dir=self.data_dir, active_calls=lambda: 0)
            await self.run_app(qa_app(ctx))
        finally:
            await db.close()


@pytest.fixture
def qa_server(tmp_path: Path) -> Iterator[QaServer]:
    why = missing()
    if why:  # ./run installs them: a missing browser is a broken setup, not a reason to skip
        pytest.fail(f"the QA page test needs headless Chromium: {why}")
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "audio").mkdir()
    srv = QaServer(data.resolve(), tmp_path / "audio").start()
    try:
        yield srv
    finally:
        srv.stop()


ROW_IDS = "return [...document.querySelectorAll('#results tr.call')].map(r => r.dataset.id)"


def js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def test_qa_page_search_play_and_override(qa_server: QaServer) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as d:
        d.get(f"{qa_server.url}/qa")
        wait_for(d, lambda d: js(d, "return document.getElementById('signin').open"), what="the sign-in dialog")
        d.find_element(By.ID, "token").send_keys(TOKEN)
        d.find_element(By.ID, "signin-btn").click()
        wait_for(d, lambda d: d.find_element(By.ID, "who-name").text == "quinn", what="signed in as quinn")
        wait_for(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results tr.call")) == 4, what="all calls listed")
        assert js(d, "return sessionStorage.getItem('callcenter.token')") == TOKEN

        # search by a phrase: only the call that says it, with the words marked in its snippet
        box = d.find_element(By.ID, "q")
        box.send_keys('"credit card"')
        d.find_element(By.ID, "search-btn").click()
        wait_for(d, lambda d: js(d, ROW_IDS) == ["call-1"], what="the phrase search to find call-1 only")
        snippet = d.find_element(By.CSS_SELECTOR, "#results tr.snippet")
        assert snippet.find_element(By.TAG_NAME, "mark").text.lower() == "credit card"
        row = d.find_element(By.CSS_SELECTOR, "#results tr.call")
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1] == "+15551234567" and cells[2] == "Alice Smith" and cells[5] == "56%"  # 2.8 / 5
        # a bad query is a readable error, not a broken page
        box.clear()
        box.send_keys('"credit card')
        d.find_element(By.ID, "search-btn").click()
        err = wait_for(d, lambda d: d.find_element(By.ID, "search-error").text, what="the bad-query message")
        assert "unclosed quote" in err
        box.clear()
        box.send_keys("refund*")
        d.find_element(By.ID, "search-btn").click()
        # (the list still shows the phrase search's result: wait for this search's own snippet)
        wait_for(d, lambda d: js(d, "return [...document.querySelectorAll('#results tr.snippet mark')]"
                                    ".map(m => m.textContent.toLowerCase())") == ["refund"], what="refund* search")
        assert js(d, ROW_IDS) == ["call-1"] and not d.find_element(By.ID, "search-error").is_displayed()

        # open the call: transcript with speakers, hits marked in the text and on the timeline
        d.find_element(By.CSS_SELECTOR, "#results tr.call").click()
        wait_for(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#transcript .utt")) == 4, what="the transcript")
        speakers = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#transcript .utt .spk")]
        assert speakers == ["AGENT", "CUSTOMER", "AGENT", "CUSTOMER"]
        marked = {e.text.lower() for e in d.find_elements(By.CSS_SELECTOR, "#transcript mark.hit")}
        assert {"thank you for calling", "refund", "credit card"} <= marked
        assert len(d.find_elements(By.CSS_SELECTOR, "#marks .mark")) == 3
        assert len(d.find_elements(By.CSS_SELECTOR, "#emotion .cell")) == 8
        wait_for(d, lambda d: js(d, "const a = document.getElementById('audio'); return a.readyState >= 1 && "
                                    "a.duration > 8"), what="the recording to load")

        # play: time advances and the highlight follows the speech
        d.find_element(By.ID, "play").click()
        wait_for(d, lambda d: js(d, "return document.querySelector('#transcript .utt.current')?.dataset.i") == "0",
                 timeout=10, what="the first utterance highlighted")
        t1 = float(js(d, "return document.getElementById('audio').currentTime"))
        wait_for(d, lambda d: js(d, "return document.querySelector('#transcript .utt.current')?.dataset.i") == "1",
                 timeout=15, what="the highlight to move to the customer's utterance")
        t2 = float(js(d, "return document.getElementById('audio').currentTime"))
        assert t2 > t1 and 2.9 <= t2 < 7.0, (t1, t2)
        assert d.find_element(By.ID, "t-now").text in ("0:02", "0:03", "0:04", "0:05", "0:06")
        screenshot(d, SHOTS / "qa-page-playing.png")
        d.find_element(By.ID, "play").click()
        wait_for(d, lambda d: js(d, "return document.getElementById('audio').paused"), what="paused")

        # clicking an utterance seeks there
        d.find_elements(By.CSS_SELECTOR, "#transcript .utt")[3].click()
        wait_for(d, lambda d: js(d, "return document.querySelector('#transcript .utt.current')?.dataset.i") == "3",
                 what="the clicked utterance to be current")
        assert abs(float(js(d, "return document.getElementById('audio').currentTime")) - 7.2) < 0.3

        # override the disclosure with a comment
        item = d.find_element(By.CSS_SELECTOR, '.item[data-item="disclosure"]')
        item.find_element(By.CSS_SELECTOR, "input.override").send_keys("100")
        item.find_element(By.CSS_SELECTOR, "input.comment").send_keys("said at 0:05, the ASR missed it")
        item.find_element(By.CSS_SELECTOR, "button.save").click()
        wait_for(d, lambda d: "quinn" in d.find_element(By.CSS_SELECTOR, '.item[data-item="disclosure"] .by').text,
                 what="the override saved")
        assert d.find_element(By.CSS_SELECTOR, "#call-score .value").text == "96%"
        screenshot(d, SHOTS / "qa-page-review.png")

        # the token travelled in headers only
        urls = js(d, "return performance.getEntriesByType('resource').map(e => e.name)")
        assert urls and not any(TOKEN in u for u in urls)
        errors = [m for m in console(d) if "status of 400" not in m]   # (the bad query above)
        assert not errors, errors

        # a reload keeps the tab's sign-in and reopens the call from the address
        d.refresh()
        wait_for(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#transcript .utt")) == 4, what="the reload")
        assert not js(d, "return document.getElementById('signin').open")
        assert len(d.find_elements(By.CSS_SELECTOR, "#results tr.call")) == 4
        wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#history .bar"), what="the agent's history")
        screenshot(d, SHOTS / "qa-page-overview.png")

    got = httpx.get(f"{qa_server.url}/api/qa/calls/call-1", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    item = next(i for i in got["scorecards"][0]["items"] if i["item"] == "disclosure")
    assert (item["score"], item["reviewer"], item["comment"]) == (1.0, "quinn", "said at 0:05, the ASR missed it")
    assert got["call"]["score"] == pytest.approx((1 + 2 + 1 + 0.8) / 5)
