/* Advantage and bad-case marks on a rollout's page.
 *
 * Advantage: the GRPO advantage the local backbone gave each sample (all samples of a rollout share
 * it), written +0.707 / −0.707 / 0.000 and coloured by sign (adv-pos green, adv-neg red, adv-zero
 * grey); debug and validation rollouts, and older files, have none: "—" (adv-none).
 *
 * Bad cases: one badge per flag, from /api/bad_cases (server-side detectors re-run call by call, see
 * astuner/logview/locate.py). A click on a badge selects its next location: the sample's tab is
 * opened if needed, the span's tokens get class `hl` and are scrolled into view, the message card
 * (when known) too, and a line says where it is. The selection is kept in the URL
 * (?sample=&bad=&at=), so a located bad case can be linked. A flag that could not be located has
 * a dashed badge whose tooltip says why; clicking it does nothing.
 */
"use strict";
window.LV = window.LV || {};
(function (LV) {
  const el = (...a) => LV.el(...a);

  LV.fmtAdvantage = function (v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    if (Math.abs(v) < 0.0005) return "0.000";
    return (v > 0 ? "+" : "−") + Math.abs(v).toFixed(3);
  };

  LV.advClass = function (v) {
    if (typeof v !== "number" || !isFinite(v)) return "adv-none";
    return Math.abs(v) < 0.0005 ? "adv-zero" : v > 0 ? "adv-pos" : "adv-neg";
  };

  LV.advTitle = function (v) {
    return typeof v === "number" && isFinite(v)
      ? "GRPO advantage: (reward − group mean) / group std, the same for every sample of this rollout"
      : "no advantage recorded: debug and validation rollouts are not trained";
  };

  /* The token spans of `sampleIdx` to mark, from the /api/bad_cases answer. */
  LV.marksFor = function (info, sampleIdx) {
    const out = [];
    ((info && info.bad_cases) || []).forEach((b) => b.locations.forEach((loc) => {
      if (loc.sample === sampleIdx) out.push({ start: loc.start, end: loc.end, flag: b.flag });
    }));
    return out;
  };

  /* The location `at` (0-based, wrapping) of `flag`, or null. */
  LV.findLocation = function (info, flag, at) {
    const b = ((info && info.bad_cases) || []).find((x) => x.flag === flag);
    if (!b || !b.locations.length) return null;
    const n = ((Number(at) || 0) % b.locations.length + b.locations.length) % b.locations.length;
    return Object.assign({ flag, at: n, of: b.locations.length }, b.locations[n]);
  };

  function describe(loc) {
    const where = ["sample " + (loc.sample + 1)];
    if (loc.call !== null && loc.call !== undefined) where.push((loc.call_start === null ? "before LLM call " : "LLM call ") + (loc.call + 1));
    where.push(loc.end - loc.start > 1 ? "tokens " + loc.start + "–" + (loc.end - 1) : "token " + loc.start);
    if (loc.message !== null && loc.message !== undefined) where.push("message #" + (loc.message + 1));
    return loc.flag + " " + (loc.at + 1) + "/" + loc.of + " · " + where.join(" · ") + " · " + loc.what;
  }

  /* Badges for every flag of `info`; `pick(flag)` is called on a click of a located one. */
  LV.badCaseBadges = function (info, pick) {
    const box = el("div", { class: "chips", id: "bad-cases" });
    if (info && info.error) box.appendChild(el("span", { class: "chip warn", text: "bad-case locations unavailable: " + info.error }));
    ((info && info.bad_cases) || []).forEach((b) => {
      const n = b.locations.length;
      const badge = el("button", {
        type: "button", class: "chip bad badge" + (n ? "" : " unlocated"), "data-flag": b.flag,
        title: n ? "show where (" + n + " place" + (n > 1 ? "s" : "") + "); click again for the next" : b.note,
        text: b.flag + (n > 1 ? " ×" + n : ""),
      });
      if (n) badge.addEventListener("click", () => pick(b.flag));
      box.appendChild(badge);
    });
    return box;
  };

  /* Highlight `loc` (from LV.findLocation) in the rendered page and scroll it into view. */
  LV.highlight = async function (loc) {
    document.querySelectorAll(".hl").forEach((n) => n.classList.remove("hl"));
    document.querySelectorAll("#bad-cases .badge.active").forEach((n) => n.classList.remove("active"));
    const badge = document.querySelector('#bad-cases .badge[data-flag="' + CSS.escape(loc.flag) + '"]');
    if (badge) badge.classList.add("active");
    const line = document.getElementById("bad-where");
    if (line) line.textContent = describe(loc);
    await LV.tokensReady(loc.end - 1);
    let first = null;
    for (let i = loc.start; i < loc.end; i++) {
      const t = document.querySelector('#tokens .t[data-i="' + i + '"]');
      if (!t) continue;
      t.classList.add("hl");
      first = first || t;
    }
    if (first) first.scrollIntoView({ block: "center" });
    if (loc.message !== null && loc.message !== undefined) {
      const card = document.querySelector('#messages-pane .msg[data-m="' + loc.message + '"]');
      if (card) { card.classList.add("hl"); card.scrollIntoView({ block: "nearest" }); }
    }
    document.body.dataset.highlight = [loc.flag, loc.sample, loc.start, loc.end].join(":");
  };
})(window.LV);
