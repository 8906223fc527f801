/* Token view: one block per token, coloured by loss mask, shaded by logprob, rendered in chunks.
 *
 * The first chunk is appended synchronously so the first screen appears at once; the rest is
 * appended in small chunks from timers, so a 50k-token rollout never blocks the page for long and
 * every token ends up in the DOM (the browser's find works). A new render cancels the previous one.
 * Turn boundaries: a labelled break before each turn-start special token of the common chat
 * templates (ChatML <|im_start|>, Llama 3 <|start_header_id|>, Gemma <start_of_turn>); other
 * templates get no breaks. Whitespace is made visible: space ·, tab ⇥, newline ↵ (then a line
 * break), carriage return ␍, other control characters as \xNN, the empty string as ∅.
 * Bad-case spans (`marks`, from /api/bad_cases) get class `bc` and their flags in the tooltip;
 * LV.tokensReady(i) resolves once token i is in the DOM (never, if another render replaced this one).
 */
"use strict";
window.LV = window.LV || {};
(function (LV) {
  const CHUNK = 2000;
  const TURN_STARTS = new Set(["<|im_start|>", "<|start_header_id|>", "<start_of_turn>"]);
  LV.timing = {};

  function shade(logprob) {
    if (!logprob) return 0;
    const p = Math.exp(logprob);
    return Math.max(0, Math.min(9, Math.floor((1 - p) * 10)));
  }

  function visible(text) {
    if (text === "") return "∅";
    return text
      .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"))
      .replace(/ /g, "·").replace(/\t/g, "⇥").replace(/\r/g, "␍").replace(/\n/g, "↵");
  }

  function roleAfter(texts, i) {
    let s = "";
    for (let j = i + 1; j < Math.min(texts.length, i + 16); j++) {
      const t = texts[j];
      if (TURN_STARTS.has(t) || t.startsWith("<|end") || t === "<|eot_id|>") break;
      const nl = t.indexOf("\n");
      if (nl >= 0) { s += t.slice(0, nl); break; }
      s += t;
    }
    return s.trim();
  }

  LV.tokenTexts = function (sample) {
    const ids = sample.token_ids || [];
    const texts = sample.tokens || [];
    return ids.map((id, i) => (typeof texts[i] === "string" ? texts[i] : "[" + id + "]"));
  };

  let current = null;

  function flagsByToken(marks, total) {
    const at = new Map();
    (marks || []).forEach((m) => {
      for (let k = Math.max(0, m.start); k < Math.min(total, m.end); k++) {
        if (!at.has(k)) at.set(k, []);
        if (!at.get(k).includes(m.flag)) at.get(k).push(m.flag);
      }
    });
    return at;
  }

  /* Render one sample's tokens into `box`; returns a handle with cancel(). onProgress(done, total).
     `marks`: [{start, end, flag}] token spans of bad cases in this sample. */
  LV.renderTokens = function (box, sample, onProgress, marks) {
    if (current) current.cancel();
    const ids = sample.token_ids || [];
    const mask = sample.loss_mask || [];
    const logprobs = sample.logprobs || [];
    const texts = LV.tokenTexts(sample);
    const total = ids.length;
    const flags = flagsByToken(marks, total);
    const waiters = [];
    const t0 = performance.now();
    let i = 0, turn = 0, cancelled = false, timer = null;
    box.textContent = "";
    box.classList.add("tokens");

    function chunk() {
      const frag = document.createDocumentFragment();
      const end = Math.min(total, i + CHUNK);
      for (; i < end; i++) {
        const text = texts[i];
        if (TURN_STARTS.has(text)) {
          turn += 1;
          const br = document.createElement("div");
          br.className = "turn";
          br.textContent = "turn " + turn + " · " + (roleAfter(texts, i) || "?");
          frag.appendChild(br);
        }
        const span = document.createElement("span");
        span.className = "t m" + (mask[i] ? 1 : 0) + " s" + shade(logprobs[i]) + (flags.has(i) ? " bc" : "");
        span.dataset.i = i;
        span.textContent = visible(text);
        frag.appendChild(span);
        if (text.indexOf("\n") >= 0) frag.appendChild(document.createElement("br"));
      }
      box.appendChild(frag);
      for (let w = waiters.length - 1; w >= 0; w--) {
        if (waiters[w].index < i) { waiters[w].resolve(); waiters.splice(w, 1); }
      }
      if (onProgress) onProgress(i, total);
      if (i < total && !cancelled) timer = setTimeout(chunk, 0);
      else if (!cancelled) LV.timing.allTokensMs = performance.now() - t0;
    }

    box.onmouseover = (e) => showTip(e, ids, mask, logprobs, texts, flags);
    box.onmousemove = (e) => moveTip(e);
    box.onmouseleave = () => hideTip();
    chunk();
    LV.timing.firstTokensMs = performance.now();
    LV.timing.firstChunkMs = performance.now() - t0;
    LV.timing.firstChunkTokens = i;
    current = {
      cancel() { cancelled = true; clearTimeout(timer); hideTip(); },
      ready(index) {
        return index < i || index >= total ? Promise.resolve() : new Promise((resolve) => waiters.push({ index, resolve }));
      },
    };
    return current;
  };

  LV.tokensReady = function (index) { return current ? current.ready(index) : Promise.resolve(); };

  function tip() { return document.getElementById("tip"); }

  function showTip(e, ids, mask, logprobs, texts, flags) {
    const t = e.target.closest ? e.target.closest(".t") : null;
    if (!t) { hideTip(); return; }
    const i = Number(t.dataset.i);
    const lp = Number(logprobs[i] || 0);
    const lines = [
      "token #" + i + "   id " + ids[i],
      "logprob " + lp.toFixed(4) + (mask[i] ? "   p=" + Math.exp(lp).toFixed(3) : ""),
      mask[i] ? "trained (loss_mask 1)" : "not trained (loss_mask 0)",
      "text " + JSON.stringify(texts[i]),
    ];
    if (flags.has(i)) lines.push("bad case: " + flags.get(i).join(", "));
    const el = tip();
    el.textContent = lines.join("\n");
    el.hidden = false;
    moveTip(e);
  }

  function moveTip(e) {
    const el = tip();
    if (el.hidden) return;
    const x = Math.min(e.clientX + 14, window.innerWidth - el.offsetWidth - 8);
    const y = Math.min(e.clientY + 16, window.innerHeight - el.offsetHeight - 8);
    el.style.left = Math.max(4, x) + "px";
    el.style.top = Math.max(4, y) + "px";
  }

  function hideTip() { const el = tip(); if (el) el.hidden = true; }
  LV.hideTip = hideTip;
})(window.LV);
