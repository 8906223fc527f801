/* One rollout: its outcome and advantage, its bad cases (badges that show where each happened),
 * the conversation (with tool calls and tool responses) and its tokens.
 *
 * Messages are shown as stored in the rollout's `messages` (OpenAI-style role/content/tool_calls,
 * or AgentScope content blocks: text, tool_use, tool_result); anything else is shown as JSON.
 * All text goes through textContent, never innerHTML: model output is full of tags.
 */
"use strict";
window.LV = window.LV || {};
(function (LV) {
  const el = (...a) => LV.el(...a);

  function pretty(value) {
    if (typeof value === "string") {
      try { return JSON.stringify(JSON.parse(value), null, 2); } catch (e) { return value; }
    }
    return JSON.stringify(value, null, 2);
  }

  function toolCall(name, args) {
    let parsed = args;
    if (typeof args === "string") { try { parsed = JSON.parse(args); } catch (e) { parsed = args; } }
    const body = parsed && typeof parsed === "object" && typeof parsed.code === "string"
      ? el("pre", { class: "code", text: parsed.code })
      : el("pre", { text: pretty(parsed) });
    return el("div", { class: "toolcall" }, el("div", { class: "label", text: "tool call → " + (name || "?") }), body);
  }

  function contentBlocks(content) {
    if (content === null || content === undefined || content === "") return [];
    if (typeof content === "string") return [el("pre", { class: "text", text: content })];
    if (!Array.isArray(content)) return [el("pre", { text: pretty(content) })];
    return content.map((b) => {
      if (b && b.type === "text") return el("pre", { class: "text", text: b.text || "" });
      if (b && b.type === "tool_use") return toolCall(b.name, b.input);
      if (b && b.type === "tool_result") {
        const out = Array.isArray(b.output) ? b.output.map((o) => (o && o.text) || pretty(o)).join("\n") : pretty(b.output);
        return el("div", { class: "toolresult" }, el("div", { class: "label", text: "tool result ← " + (b.name || "") }),
          el("pre", { text: out }));
      }
      return el("pre", { text: pretty(b) });
    });
  }

  LV.renderMessages = function (messages) {
    const box = el("div", { class: "messages" });
    (messages || []).forEach((m, i) => {
      const role = (m && m.role) || "?";
      const isTool = role === "tool" || role === "function";
      const head = isTool ? "tool response" + (m.name ? " (" + m.name + ")" : "") : role;
      const card = el("div", { class: "msg role-" + role.replace(/[^a-z_]/gi, "") + (isTool ? " tool" : ""), "data-m": i },
        el("div", { class: "msg-head" }, el("span", { class: "idx", text: "#" + (i + 1) }), el("span", { text: head })));
      contentBlocks(m && m.content).forEach((c) => card.appendChild(c));
      ((m && m.tool_calls) || []).forEach((tc) => {
        const fn = tc.function || tc;
        card.appendChild(toolCall(fn.name, fn.arguments !== undefined ? fn.arguments : fn.input));
      });
      box.appendChild(card);
    });
    if (!box.childNodes.length) box.appendChild(el("p", { class: "muted", text: "no messages recorded" }));
    return box;
  };

  function outcome(r, advantage) {
    const chips = el("div", { class: "chips" });
    const add = (text, cls, title) => chips.appendChild(el("span", { class: "chip " + (cls || ""), text, title }));
    add(r.is_success ? "success" : "failure", r.is_success ? "ok" : "bad");
    add("reward " + (r.reward === null || r.reward === undefined ? "–" : Number(r.reward).toFixed(3)));
    chips.appendChild(el("span", { class: "chip " + LV.advClass(advantage), id: "advantage", title: LV.advTitle(advantage),
      text: "advantage " + LV.fmtAdvantage(advantage) }));
    add("task " + r.task_id);
    add("repeat " + r.repeat_index);
    if (r.num_calls !== undefined) add(r.num_calls + " LLM calls");
    if (r.num_tool_calls !== undefined) add(r.num_tool_calls + " tool calls");
    if (r.timeline_breaks) add(r.timeline_breaks + " timeline breaks", "warn");
    if (r.context_overflow) add("context overflow", "warn");
    return chips;
  }

  /* Without /api/bad_cases (an error), the flags still show, unlocated. */
  function unlocated(r, error) {
    const flags = Object.assign({}, r.bad_cases || {}, r.madness || {});
    return { error, bad_cases: Object.keys(flags).filter((k) => flags[k]).map((flag) => ({ flag, locations: [], note: error })) };
  }

  function legend() {
    return el("div", { class: "legend" },
      el("span", { class: "t m1 s1", text: "trained" }), el("span", { class: "t m1 s8", text: "trained, unlikely" }),
      el("span", { class: "t m0 s0", text: "not trained" }), el("span", { class: "t m1 s1 bc", text: "bad case" }),
      el("span", { class: "muted", text: "darker = lower probability under the policy; hover a token for id and logprob" }));
  }

  /* Render rollout `index` of `file` in experiment `exp` into `view`; `query.sample` picks the sample,
     `query.bad` and `query.at` a bad-case location to highlight (its sample wins over `query.sample`). */
  LV.showRollout = async function (view, exp, file, index, query) {
    const [r, found] = await Promise.all([
      LV.api("/api/rollout", { exp, file, index }),
      LV.api("/api/bad_cases", { exp, file, index }).catch((err) => ({ error: err.message })),
    ]);
    const info = found.error ? unlocated(r, found.error) : found;
    const samples = r.samples || [];
    const chosen = query.bad ? LV.findLocation(info, query.bad, query.at) : null;
    const si = Math.max(0, Math.min(samples.length - 1, chosen ? chosen.sample : Number(query.sample) || 0));
    view.textContent = "";
    const base = "#/exp/" + encodeURIComponent(exp) + "/rollout/" + encodeURIComponent(file) + "/" + index;
    const advantage = info.advantage !== undefined ? info.advantage : samples.map((s) => s.advantage).find((v) => typeof v === "number");
    const clicks = {};
    const pick = (flag) => {
      const last = flag in clicks ? clicks[flag] : chosen && chosen.flag === flag ? chosen.at : -1;
      const loc = LV.findLocation(info, flag, last + 1);
      clicks[flag] = loc.at;
      const hash = base + "?sample=" + loc.sample + "&bad=" + encodeURIComponent(flag) + "&at=" + loc.at;
      if (loc.sample !== si) { location.hash = hash; return; }
      history.replaceState(null, "", hash);
      LV.highlight(loc);
    };
    const head = el("section", { class: "rollout-head" },
      el("h2", { text: (r.rollout_id || "rollout") + "  ·  " + file + ":" + index }), outcome(r, advantage),
      LV.badCaseBadges(info, pick), el("div", { class: "muted", id: "bad-where" }));
    if (r.final_answer !== null && r.final_answer !== undefined) {
      head.appendChild(el("div", { class: "final" }, el("b", { text: "final answer " }),
        el("code", { text: typeof r.final_answer === "string" ? r.final_answer : JSON.stringify(r.final_answer) })));
    }
    if (r.error) head.appendChild(el("pre", { class: "error", text: r.error }));
    view.appendChild(head);

    const tokBox = el("div", { id: "tokens" });
    const status = el("span", { class: "muted", id: "tok-status" });
    const tabs = el("div", { class: "tabs" });
    samples.forEach((s, k) => {
      const n = (s.token_ids || []).length;
      const trained = (s.loss_mask || []).reduce((a, b) => a + (b ? 1 : 0), 0);
      tabs.appendChild(el("a", { class: "tab " + LV.advClass(s.advantage) + (k === si ? " active" : ""), href: base + "?sample=" + k,
        title: LV.advTitle(s.advantage),
        text: "sample " + (k + 1) + "/" + samples.length + " · " + n + " tokens, " + trained + " trained · adv " + LV.fmtAdvantage(s.advantage) }));
    });
    const current = samples[si] || {};
    const sampleHead = el("div", { class: "sample-head " + LV.advClass(current.advantage), id: "sample-head", title: LV.advTitle(current.advantage),
      text: "sample " + (si + 1) + " · advantage " + LV.fmtAdvantage(current.advantage) + " · reward " +
        (typeof current.reward === "number" ? current.reward.toFixed(3) : "–") });
    const left = el("section", { class: "pane", id: "messages-pane" },
      el("h3", { text: "Messages (" + (r.messages || []).length + ")" }), LV.renderMessages(r.messages));
    const right = el("section", { class: "pane", id: "tokens-pane" },
      el("div", { class: "pane-head" }, el("h3", {}, el("span", { text: "Tokens " }), status), tabs, sampleHead, legend()), tokBox);
    view.appendChild(el("div", { class: "split" }, left, right));
    if (!samples.length) {
      tokBox.appendChild(el("p", { class: "muted", text: "this rollout has no samples (it failed or produced none)" }));
      return;
    }
    LV.renderTokens(tokBox, samples[si], (done, total) => {
      status.textContent = done < total ? "rendering " + done + " / " + total : total + " tokens";
      document.body.dataset.tokensRendered = String(done);
      document.body.dataset.tokensTotal = String(total);
    }, LV.marksFor(info, si));
    if (chosen) await LV.highlight(chosen);
  };
})(window.LV);
