/* The page: routes (in the URL hash, so any view can be linked), the experiment list, the rollout
 * list with its filters and paging, and the curves view. Lists and curves poll every few seconds
 * while the tab is visible, so a running job's new rollouts and steps appear without a reload.
 *
 * Routes: #/  ·  #/exp/<name>?success=&reward_min=&reward_max=&bad_case=&task_id=&file=&offset=
 *         #/exp/<name>/curves  ·  #/exp/<name>/rollout/<file>/<index>?sample=<k>&bad=<flag>&at=<n>
 */
"use strict";
window.LV = window.LV || {};
(function (LV) {
  const POLL_MS = 5000;
  const PAGE = 50;
  const FILTERS = ["success", "reward_min", "reward_max", "bad_case", "task_id", "file"];
  let refresh = null;

  LV.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null) return;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    });
    children.forEach((c) => c !== null && c !== undefined && node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return node;
  };
  const el = LV.el;

  LV.api = async function (path, params) {
    const url = new URL(path, location.origin);
    Object.entries(params || {}).forEach(([k, v]) => { if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v); });
    const resp = await fetch(url);
    if (!resp.ok) {
      let msg = resp.statusText;
      try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return resp.json();
  };

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, qs] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, query: Object.fromEntries(new URLSearchParams(qs || "")) };
  }

  function expLink(name, rest, query) {
    const q = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v !== "" && v !== undefined && v !== null));
    return "#/exp/" + encodeURIComponent(name) + (rest || "") + (q.toString() ? "?" + q : "");
  }

  function crumbs(items) {
    const nav = document.getElementById("crumbs");
    nav.textContent = "";
    items.forEach(([text, href]) => { nav.appendChild(el("span", { class: "sep", text: "›" })); nav.appendChild(href ? el("a", { href, text }) : el("span", { text })); });
  }

  function live(text) { document.getElementById("live").textContent = text; }
  function stamp() { live("updated " + new Date().toLocaleTimeString()); }
  function fmt(v, digits) { return v === null || v === undefined ? "–" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits || 3)) : String(v); }

  async function route() {
    refresh = null;
    LV.hideTip();
    const view = document.getElementById("view");
    const { parts, query } = parseHash();
    try {
      if (parts[0] !== "exp" || parts.length < 2) return await experimentsView(view);
      const name = parts[1];
      if (parts[2] === "rollout" && parts.length >= 5) {
        crumbs([[name === "." ? "(root)" : name, expLink(name)], [parts[3] + ":" + parts[4], null]]);
        live("");
        return await LV.showRollout(view, name, parts[3], Number(parts[4]), query);
      }
      if (parts[2] === "curves") return await curvesView(view, name);
      return await rolloutsView(view, name, query);
    } catch (err) {
      view.textContent = "";
      view.appendChild(el("p", { class: "error", text: "error: " + err.message }));
    }
  }

  async function experimentsView(view) {
    crumbs([]);
    const data = await LV.api("/api/experiments");
    view.textContent = "";
    view.appendChild(el("h2", { text: "Experiments under " + data.root }));
    if (!data.experiments.length) {
      view.appendChild(el("p", { class: "muted", text: "no experiment yet (a directory with rollouts/ or metrics.jsonl)" }));
    } else {
      const table = el("table", { class: "list" }, el("tr", {}, ...["experiment", "modified", "rollout files", "success rate", "reward mean", "rollouts", ""].map((h) => el("th", { text: h }))));
      data.experiments.forEach((e) => {
        const s = e.summary || {};
        table.appendChild(el("tr", { class: "click", onclick: () => { location.hash = expLink(e.name); } },
          el("td", {}, el("a", { href: expLink(e.name), text: e.name === "." ? e.title + " (root)" : e.name })),
          el("td", { text: new Date(e.mtime * 1000).toLocaleString() }),
          el("td", { text: e.rollout_files.join(", ") || "–" }),
          el("td", { text: fmt(s.success_rate) }), el("td", { text: fmt(s.reward_mean) }), el("td", { text: fmt(s.rollouts) }),
          el("td", {}, e.has_metrics ? el("a", { href: expLink(e.name, "/curves"), text: "curves" }) : "")));
      });
      view.appendChild(table);
    }
    stamp();
    refresh = () => experimentsView(view);
  }

  function tabsFor(name, active) {
    return el("div", { class: "tabs" },
      el("a", { class: "tab" + (active === "rollouts" ? " active" : ""), href: expLink(name), text: "Rollouts" }),
      el("a", { class: "tab" + (active === "curves" ? " active" : ""), href: expLink(name, "/curves"), text: "Curves" }));
  }

  async function rolloutsView(view, name, query) {
    crumbs([[name === "." ? "(root)" : name, null]]);
    const state = Object.assign({}, query);
    view.textContent = "";
    view.appendChild(tabsFor(name, "rollouts"));
    const form = el("form", { class: "filters", onsubmit: (e) => e.preventDefault() });
    const field = (label, input) => el("label", {}, el("span", { text: label }), input);
    const inputs = {
      success: el("select", {}, el("option", { value: "", text: "any" }), el("option", { value: "1", text: "success" }), el("option", { value: "0", text: "failure" })),
      reward_min: el("input", { type: "number", step: "any", size: "6", placeholder: "min" }),
      reward_max: el("input", { type: "number", step: "any", size: "6", placeholder: "max" }),
      bad_case: el("select", {}),
      task_id: el("input", { type: "search", placeholder: "contains…", size: "12" }),
      file: el("select", {}),
    };
    form.append(field("outcome", inputs.success), field("reward ≥", inputs.reward_min), field("reward ≤", inputs.reward_max),
      field("bad case", inputs.bad_case), field("task id", inputs.task_id), field("file", inputs.file));
    const summary = el("div", { class: "muted", id: "list-summary" });
    const tableBox = el("div", {});
    const pager = el("div", { class: "pager" });
    view.append(form, summary, tableBox, pager);
    inputs.success.value = state.success || "";
    inputs.reward_min.value = state.reward_min || "";
    inputs.reward_max.value = state.reward_max || "";
    inputs.task_id.value = state.task_id || "";
    let lastKey = null, timer = null;

    function options(select, values, labels, current) {
      const key = values.join("\u0000");
      if (select.dataset.key === key) return;
      select.dataset.key = key;
      select.textContent = "";
      values.forEach((v, i) => select.appendChild(el("option", { value: v, text: labels[i] })));
      select.value = values.includes(current) ? current : "";
    }

    async function load(force) {
      const params = Object.assign({ exp: name, limit: PAGE }, state);
      const data = await LV.api("/api/rollouts", params);
      options(inputs.bad_case, ["", "any", "none", ...data.bad_case_names], ["any or none", "any bad case", "no bad case", ...data.bad_case_names], state.bad_case || "");
      options(inputs.file, ["", ...data.files], ["all files", ...data.files], state.file || "");
      const key = JSON.stringify([data.total, data.matched, data.offset, data.rows.map((r) => r.file + r.index)]);
      stamp();
      if (key === lastKey && !force) return;
      lastKey = key;
      const first = data.matched ? data.offset + 1 : 0;
      summary.textContent = "rollouts " + first + "–" + (data.offset + data.rows.length) + " of " + data.matched + " matching (" + data.total + " in total" + (data.skipped_lines ? ", " + data.skipped_lines + " unreadable lines" : "") + ")";
      const table = el("table", { class: "list", id: "rollout-table" }, el("tr", {}, ...["#", "task id", "repeat", "reward", "advantage", "outcome", "bad cases", "tokens (trained/all)", "tool calls", "final answer"].map((h) => el("th", { text: h }))));
      data.rows.forEach((r) => {
        const href = expLink(name, "/rollout/" + encodeURIComponent(r.file) + "/" + r.index);
        table.appendChild(el("tr", { class: "click rollout-row", onclick: () => { location.hash = href; } },
          el("td", {}, el("a", { href, text: r.file + ":" + r.index })),
          el("td", { text: String(r.task_id) }), el("td", { text: fmt(r.repeat_index) }), el("td", { text: fmt(r.reward) }),
          el("td", { class: "adv " + LV.advClass(r.advantage), title: LV.advTitle(r.advantage), text: LV.fmtAdvantage(r.advantage) }),
          el("td", { class: r.is_success ? "ok" : "bad", text: r.error ? "failed (error)" : r.is_success ? "success" : "failure" }),
          el("td", {}, ...r.bad_cases.map((b) => el("a", { class: "chip bad", href: href + "?bad=" + encodeURIComponent(b), text: b,
            title: "open the rollout at this bad case", onclick: (e) => e.stopPropagation() }))),
          el("td", { text: r.n_trained + " / " + r.n_tokens }), el("td", { text: fmt(r.num_tool_calls) }),
          el("td", { class: "answer", text: r.final_answer || "" })));
      });
      tableBox.textContent = "";
      tableBox.appendChild(table);
      pager.textContent = "";
      const go = (offset) => { state.offset = String(Math.max(0, offset)); sync(); load(true); };
      if (data.offset > 0) pager.appendChild(el("button", { type: "button", text: "‹ previous", onclick: () => go(data.offset - PAGE) }));
      if (data.offset + data.rows.length < data.matched) pager.appendChild(el("button", { type: "button", text: "next ›", onclick: () => go(data.offset + PAGE) }));
    }

    function sync() { history.replaceState(null, "", expLink(name, "", state)); }

    function changed() {
      FILTERS.forEach((k) => { state[k] = inputs[k].value; });
      state.offset = "";
      sync();
      clearTimeout(timer);
      timer = setTimeout(() => load(true).catch(showError), 250);
    }

    function showError(err) { summary.textContent = "error: " + err.message; }
    form.addEventListener("change", changed);
    form.addEventListener("input", changed);
    await load(true);
    refresh = () => load(false);
  }

  async function curvesView(view, name) {
    crumbs([[name === "." ? "(root)" : name, expLink(name)], ["curves", null]]);
    view.textContent = "";
    view.appendChild(tabsFor(name, "curves"));
    const img = el("img", { class: "curve", alt: "training curve of " + name });
    const note = el("p", { class: "muted" });
    const tableBox = el("div", {});
    view.append(note, img, tableBox);
    let lastCount = -1;

    async function load() {
      const data = await LV.api("/api/metrics", { exp: name });
      stamp();
      if (data.rows.length === lastCount) return;
      lastCount = data.rows.length;
      if (!data.rows.length) { note.textContent = "no metrics.jsonl rows yet (the debug backbone writes none)"; img.hidden = true; return; }
      note.textContent = data.rows.length + " steps logged; the curve is redrawn every few steps by the run";
      img.hidden = false;
      img.src = "/api/curve.png?exp=" + encodeURIComponent(name) + "&n=" + data.rows.length;
      const keys = ["step", ...Array.from(new Set(data.rows.flatMap((r) => Object.keys(r)))).filter((k) => k !== "step" && k !== "time").sort()];
      const table = el("table", { class: "list metrics" }, el("tr", {}, ...keys.map((k) => el("th", { text: k }))));
      data.rows.slice(-100).reverse().forEach((r) => table.appendChild(el("tr", {}, ...keys.map((k) => el("td", { text: fmt(r[k], 4) })))));
      tableBox.textContent = "";
      tableBox.append(el("h3", { text: "Last " + Math.min(100, data.rows.length) + " steps (newest first)" }), table);
    }
    await load();
    refresh = load;
  }

  setInterval(() => {
    if (refresh && document.visibilityState === "visible") refresh().catch((e) => live("refresh failed: " + e.message));
  }, POLL_MS);
  window.addEventListener("hashchange", route);
  route();
})(window.LV);
