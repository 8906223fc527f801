"""The log viewer end to end: real debug runs, the viewer, and headless Chromium driven over CDP.

The debug runs are the README's offline quick start and the bad-case run of
``tests/logview/test_logview_locate.py`` (one problem per bad case), both in-process through
``astuner.cli.main``; a copy of the latter carries the advantages GRPO assigns (``bad_cases_grpo``).
Chromium is Debian's ``/usr/bin/chromium`` (CI installs it); it is driven with the Chrome DevTools
Protocol over its websocket (``websocket-client``, already installed as a dependency of
agentscope's dashscope). Each page is opened straight from a URL, as a person following a printed
link would. Screenshots go to the test's tmp dir, and also to ``$ASTUNER_LOGVIEW_SCREENSHOTS`` when
that is set (``docs/logview_tokens.png`` was made that way).
"""

from __future__ import annotations

import base64
import colorsys
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from astuner.cli import main as cli_main
from astuner.logview import start_logview
from tests.conftest import REPO
from tests.logview.test_logview_locate import BAD_CASE_TASKS, run_bad_case_debug, with_advantages
from tests.logview.test_logview_server import synthetic_rollout, write_rollouts

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OFFLINE_YAML = REPO / "tutorial" / "example_math_agent" / "math_agent_offline.yaml"
BIG = 50_000


def chromium_binary() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if not found:
        pytest.skip("chromium not found (Debian: apt-get install chromium; CI installs it)")
    return found


class Browser:
    """Just enough of CDP: evaluate JavaScript, navigate, wait, screenshot; collects page exceptions."""

    def __init__(self, binary: str, profile: Path, width: int = 1440, height: int = 960) -> None:
        websocket = pytest.importorskip("websocket", reason="websocket-client drives Chromium over CDP")
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=60)
        self.ids = itertools.count(1)
        self.exceptions: list[dict] = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.exceptionThrown":
                self.exceptions.append(msg["params"]["exceptionDetails"])
            if msg.get("id") == msg_id:
                assert "error" not in msg, (method, msg["error"])
                return msg["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """A fresh page load (about:blank first, so a hash-only change still reloads)."""
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)
        self.wait(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def wait(self, expression: str, timeout: float = 30.0):
        """Poll until ``expression`` is truthy; while the page is still loading it may throw (read as false)."""
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(guarded)
            if value:
                return value
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {expression}")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two real debug runs (one with advantages added), a synthetic 50k-token experiment, the viewer, a browser."""
    binary = chromium_binary()
    tmp = tmp_path_factory.mktemp("logview_e2e")
    exp_root = tmp / "saved_experiments"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        mp.setenv("ASTUNER_CACHE", str(tmp / "cache"))
        code = cli_main(["--conf", str(OFFLINE_YAML), "--backbone=debug", "--exp-dir", str(exp_root)])
    assert code == 0
    [run] = [p for p in exp_root.iterdir() if (p / "rollouts" / "debug.jsonl").exists()]
    bad_run = run_bad_case_debug(tmp / "bad_cases", exp_root)
    with_advantages(bad_run / "rollouts" / "debug.jsonl", exp_root / "bad_cases_grpo" / "rollouts" / "step_000001.jsonl")
    write_rollouts(exp_root / "synthetic_50k" / "rollouts" / "big.jsonl", [synthetic_rollout(BIG, task_id="big")])
    (exp_root / "synthetic_50k" / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "time": 0, "reward_mean": s / 20, "success_rate": s / 25}) + "\n" for s in range(1, 21)))
    server = start_logview(exp_root, port=0)
    browser = Browser(binary, tmp / "chromium-profile")
    shots = tmp / "screenshots"
    shots.mkdir()
    try:
        yield {"server": server, "browser": browser, "run": run.name, "bad_run": bad_run.name, "shots": shots}
    finally:
        browser.close()
        server.stop()
    assert not browser.exceptions, browser.exceptions


def keep_screenshot(path: Path) -> None:
    target = os.environ.get("ASTUNER_LOGVIEW_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    print(f"screenshot: {path}")


def api(site, path: str):
    with urllib.request.urlopen(site["server"].url + path, timeout=10) as resp:
        return json.load(resp)


def test_experiment_and_rollout_lists_with_filters(site):
    b, srv, run = site["browser"], site["server"], site["run"]
    b.open(srv.url)
    b.wait(f"[...document.querySelectorAll('table.list a')].some(a => a.textContent === {json.dumps(run)})")
    b.open(srv.url_for(run))
    assert b.wait("document.querySelectorAll('.rollout-row').length") == 16
    b.open(srv.url_for(run) + "?success=0")
    b.wait("document.querySelectorAll('.rollout-row').length === 2")
    assert b.js("[...document.querySelectorAll('.rollout-row .chip')].map(c => c.textContent)") == ["empty_tool_stdout"] * 2
    b.open(srv.url_for(run) + "?bad_case=answer_before_tool_response&reward_min=0.5")
    b.wait("document.querySelectorAll('.rollout-row').length === 2")
    assert b.js("document.querySelector('select').closest('form') !== null")
    keep_screenshot(b.screenshot(site["shots"] / "logview_list.png"))


def test_rollout_opens_with_messages_and_coloured_tokens(site):
    b, srv, run = site["browser"], site["server"], site["run"]
    record = api(site, f"api/rollout?exp={run}&file=debug.jsonl&index=0")
    sample = record["samples"][0]
    n, trained = len(sample["token_ids"]), sum(sample["loss_mask"])
    b.open(srv.url_for(run, ("debug.jsonl", 0)))
    b.wait(f"document.body.dataset.tokensRendered === '{n}'")
    counts = b.js("[document.querySelectorAll('#tokens .t').length, document.querySelectorAll('#tokens .t.m1').length,"
                  " document.querySelectorAll('#tokens .t.m0').length, document.querySelectorAll('#tokens .turn').length]")
    assert counts == [n, trained, n - trained, sample["tokens"].count("<|im_start|>")]
    assert 0 < trained < n
    colours = b.js("['.t.m1', '.t.m0'].map(s => getComputedStyle(document.querySelector('#tokens ' + s)).backgroundColor"
                   ".match(/\\d+/g).slice(0, 3).map(Number))")
    hues = [round(colorsys.rgb_to_hls(*(c / 255 for c in rgb))[0] * 360) for rgb in colours]
    assert 180 <= hues[0] <= 220 and 15 <= hues[1] <= 45, f"trained blue, untrained orange; got {colours} ({hues})"
    texts = b.js("[...document.querySelectorAll('#tokens .t')].map(t => t.textContent).join('')")
    assert "↵" in texts and "·" in texts, "newlines and spaces are made visible"
    tool = b.js("[...document.querySelectorAll('.msg.tool')].map(m => m.textContent).join('\\n')")
    assert "tool response" in tool and "<stdout>13.0" in tool
    assert "print(4 * 2.50 + 3)" in b.js("document.querySelector('.toolcall pre.code').textContent")
    first = sample["loss_mask"].index(1)
    b.js(f"""(() => {{ const t = document.querySelector('#tokens .t[data-i="{first}"]');
        let turn = t; while (turn && !turn.classList.contains('turn')) turn = turn.previousElementSibling;
        const pane = document.getElementById('tokens-pane');
        pane.scrollTop = (turn || t).offsetTop - pane.offsetTop - 330; return true; }})()""")
    tip = b.js(f"""(() => {{
        const t = document.querySelector('#tokens .t[data-i="{first + 5}"]');
        const r = t.getBoundingClientRect();
        t.dispatchEvent(new MouseEvent('mouseover', {{bubbles: true, clientX: r.right - 2, clientY: r.bottom - 2}}));
        const tip = document.getElementById('tip');
        return tip.hidden ? null : tip.textContent; }})()""")
    assert tip and f"id {sample['token_ids'][first + 5]}" in tip and "logprob" in tip and "trained (loss_mask 1)" in tip
    keep_screenshot(b.screenshot(site["shots"] / "logview_tokens.png"))


def test_50k_token_rollout_shows_its_first_screen_quickly_and_stays_responsive(site):
    b, srv = site["browser"], site["server"]
    b.open(srv.url_for("synthetic_50k", ("big.jsonl", 0)))
    first_ms = b.wait("window.LV && LV.timing.firstTokensMs", timeout=30)
    first_chunk = b.js("LV.timing.firstChunkTokens")
    worst = 0.0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        start = time.monotonic()
        done = b.js(f"document.body.dataset.tokensRendered === '{BIG}'")
        worst = max(worst, time.monotonic() - start)
        if done:
            break
    assert done, "all 50k tokens should end up on the page"
    assert first_ms < 5000, f"first tokens after {first_ms:.0f} ms from navigation"
    assert first_chunk < BIG, "tokens are rendered in chunks"
    assert worst < 2.0, f"the page did not answer for {worst:.2f} s while rendering"
    assert b.js("document.querySelectorAll('#tokens .t').length") == BIG
    b.js("(() => { const t = document.querySelectorAll('#tokens .turn')[1]; const pane = document.getElementById('tokens-pane');"
         " pane.scrollTop = t.offsetTop - pane.offsetTop - 300; return true; })()")
    keep_screenshot(b.screenshot(site["shots"] / "logview_50k.png"))
    print(f"50k tokens: first tokens at {first_ms:.0f} ms, all in {b.js('LV.timing.allTokensMs'):.0f} ms, "
          f"slowest probe {worst * 1000:.0f} ms")


def test_curves_view_shows_the_png_and_the_metrics(site):
    pytest.importorskip("matplotlib", reason="matplotlib draws the curve")
    b, srv = site["browser"], site["server"]
    b.open(srv.url_for("synthetic_50k") + "/curves")
    b.wait("document.querySelector('img.curve') && document.querySelector('img.curve').naturalWidth > 0")
    assert b.js("document.querySelectorAll('table.metrics tr').length") == 21
    keep_screenshot(b.screenshot(site["shots"] / "logview_curves.png"))


def test_listing_shows_each_rollouts_advantage_coloured_by_sign(site):
    b, srv = site["browser"], site["server"]
    b.open(srv.url_for("bad_cases_grpo"))
    b.wait(f"document.querySelectorAll('.rollout-row').length === {2 * len(BAD_CASE_TASKS)}")
    rows = b.js("[...document.querySelectorAll('.rollout-row')].map(r => [r.cells[1].textContent, r.cells[2].textContent,"
                " r.cells[4].textContent, r.cells[4].className])")
    for task, repeat, text, cls in rows:
        if task == "nonsense":
            assert (text, cls) == ("0.000", "adv adv-zero")
        else:
            assert (text, cls) == (("+0.707", "adv adv-pos") if repeat == "0" else ("−0.707", "adv adv-neg")), (task, repeat)
    keep_screenshot(b.screenshot(site["shots"] / "logview_advantage_list.png"))
    b.open(srv.url_for(site["bad_run"]))
    b.wait("document.querySelectorAll('.rollout-row').length")
    assert set(b.js("[...document.querySelectorAll('.rollout-row td.adv')].map(c => c.textContent + ' ' + c.className)")) == {
        "— adv adv-none"}, "debug rollouts have no advantage: a dash, not an error"


def located(site, exp: str, task: str) -> tuple[int, dict, dict]:
    """(index in the file, the rollout, its first bad-case location) of repeat 0 of ``task``."""
    rows = api(site, f"api/rollouts?exp={exp}&task_id={task}&limit=10")["rows"]
    [row] = [r for r in rows if r["task_id"] == task and r["repeat_index"] == 0]
    marks = api(site, f"api/bad_cases?exp={exp}&file={row['file']}&index={row['index']}")
    return row["index"], row, marks


def test_a_click_on_a_bad_case_badge_highlights_its_tokens_and_message(site):
    b, srv = site["browser"], site["server"]
    for task, (_, _, _, flag, shows) in BAD_CASE_TASKS.items():
        index, row, marks = located(site, "bad_cases_grpo", task)
        [entry] = marks["bad_cases"]
        loc = entry["locations"][0]
        b.open(srv.url_for("bad_cases_grpo", ("step_000001.jsonl", index)))
        b.wait("document.body.dataset.tokensRendered && document.body.dataset.tokensRendered === document.body.dataset.tokensTotal")
        advantage = b.js("[document.getElementById('advantage').textContent, document.getElementById('advantage').className,"
                         " document.getElementById('sample-head').className]")
        sign = "adv-zero" if task == "nonsense" else "adv-pos"
        assert advantage == [f"advantage {'0.000' if task == 'nonsense' else '+0.707'}", f"chip {sign}", f"sample-head {sign}"]
        assert b.js("document.querySelectorAll('#tokens .t.hl').length") == 0
        b.js(f"document.querySelector('#bad-cases .badge[data-flag=\"{flag}\"]').click()")
        where = f"{flag}:{loc['sample']}:{loc['start']}:{loc['end']}"
        b.wait(f"document.body.dataset.highlight === {json.dumps(where)}")
        lit = b.js("[...document.querySelectorAll('#tokens .t.hl')].map(t => Number(t.dataset.i))")
        assert lit == list(range(loc["start"], loc["end"]))
        text = b.js("[...document.querySelectorAll('#tokens .t.hl')].map(t => t.textContent).join('')")
        assert shows.replace(" ", "·").replace("\n", "↵") in text, (flag, text)
        assert b.js("[...document.querySelectorAll('.msg.hl')].map(m => Number(m.dataset.m))") == [loc["message"]]
        assert b.js("""(() => { const t = document.querySelector('#tokens .t.hl').getBoundingClientRect();
            const p = document.getElementById('tokens-pane').getBoundingClientRect();
            return t.top >= p.top && t.bottom <= p.bottom; })()"""), "the highlighted span is scrolled into view"
        assert flag in b.js("document.getElementById('bad-where').textContent")
        keep_screenshot(b.screenshot(site["shots"] / f"logview_bad_case_{flag}.png"))


def test_badges_cycle_through_locations_and_switch_samples(site):
    b, srv = site["browser"], site["server"]
    index, _, marks = located(site, "bad_cases_grpo", "spoofed")
    first, second = marks["bad_cases"][0]["locations"]
    b.open(srv.url_for("bad_cases_grpo", ("step_000001.jsonl", index)))
    b.wait("document.querySelector('#bad-cases .badge') !== null")  # badges come from /api/bad_cases after load
    for loc in (first, second, first):
        b.js("document.querySelector('#bad-cases .badge').click()")
        b.wait(f"document.body.dataset.highlight === 'spoofed_tool_response:0:{loc['start']}:{loc['end']}'")
    index, _, marks = located(site, "bad_cases_grpo", "empty")
    loc = marks["bad_cases"][0]["locations"][0]
    b.open(srv.url_for("bad_cases_grpo", ("step_000001.jsonl", index)) + "?sample=1")
    b.wait("document.querySelector('.tab.active') && document.querySelector('.tab.active').textContent.startsWith('sample 2/2')")
    b.wait("document.querySelector('#bad-cases .badge') !== null")
    b.js("document.querySelector('#bad-cases .badge').click()")
    b.wait(f"document.body.dataset.highlight === 'empty_reply:0:{loc['start']}:{loc['end']}'")
    assert b.js("document.querySelector('.tab.active').textContent").startswith("sample 1/2")
    assert "bad=empty_reply" in b.js("location.hash")


def test_a_bad_case_chip_in_the_list_opens_the_rollout_at_it(site):
    b, srv = site["browser"], site["server"]
    b.open(srv.url_for(site["run"]) + "?bad_case=empty_tool_stdout")
    b.wait("document.querySelectorAll('.rollout-row').length === 2")
    b.js("document.querySelector('.rollout-row a.chip').click()")
    b.wait("(document.body.dataset.highlight || '').startsWith('empty_tool_stdout:0:')")
    assert "<stdout></stdout>" in b.js("[...document.querySelectorAll('#tokens .t.hl')].map(t => t.textContent).join('')")
    assert b.js("document.querySelector('.msg.hl').textContent").startswith("#4tool response")
    assert b.js("[document.getElementById('advantage').textContent, document.querySelector('.tab').textContent.endsWith('adv —')]") == [
        "advantage —", True]
    keep_screenshot(b.screenshot(site["shots"] / "logview_bad_case_from_list.png"))
