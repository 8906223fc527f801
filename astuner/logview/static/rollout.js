/* One rollout: its outcome, the conversation (with tool calls and tool responses) and its tokens.
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
      const card = el("div", { class: "msg role-" + role.replace(/[^a-z_]/gi, "") + (isTool ? " tool" : "") },
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

  function outcome(r) {
    const chips = el("div", { class: "chips" });
    const add = (text, cls) => chips.appendChild(el("span", { class: "chip " + (cls || ""), text }));
    add(r.is_success ? "success" : "failure", r.is_success ? "ok" : "bad");
    add("reward " + (r.reward === null || r.reward === undefined ? "–" : Number(r.reward).toFixed(3)));
    add("task " + r.task_id);
    add("repeat " + r.repeat_index);
    if (r.num_calls !== undefined) add(r.num_calls + " LLM calls");
    if (r.num_tool_calls !== undefined) add(r.num_tool_calls + " tool calls");
    if (r.timeline_breaks) add(r.timeline_breaks + " timeline breaks", "warn");
    if (r.context_overflow) add("context overflow", "warn");
    const flags = Object.assign({}, r.bad_cases || {}, r.madness || {});
    Object.keys(flags).filter((k) => flags[k]).forEach((k) => add(k, "bad"));
    return chips;
  }

  function legend() {
    return el("div", { class: "legend" },
      el("span", { class: "t m1 s1", text: "trained" }), el("span", { class: "t m1 s8", text: "trained, unlikely" }),
      el("span", { class: "t m0 s0", text: "not trained" }),
      el("span", { class: "muted", text: "darker = lower probability under the policy; hover a token for id and logprob" }));
  }

  /* Render rollout `index` of `file` in experiment `exp` into `view`; `sampleIdx` picks the sample. */
  LV.showRollout = async function (view, exp, file, index, sampleIdx) {
    const r = await LV.api("/api/rollout", { exp, file, index });
    const samples = r.samples || [];
    const si = Math.max(0, Math.min(samples.length - 1, Number(sampleIdx) || 0));
    view.textContent = "";
    const base = "#/exp/" + encodeURIComponent(exp) + "/rollout/" + encodeURIComponent(file) + "/" + index;
    const head = el("section", { class: "rollout-head" },
      el("h2", { text: (r.rollout_id || "rollout") + "  ·  " + file + ":" + index }), outcome(r));
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
      tabs.appendChild(el("a", { class: "tab" + (k === si ? " active" : ""), href: base + "?sample=" + k,
        text: "sample " + (k + 1) + "/" + samples.length + " · " + n + " tokens, " + trained + " trained" }));
    });
    const left = el("section", { class: "pane", id: "messages-pane" },
      el("h3", { text: "Messages (" + (r.messages || []).length + ")" }), LV.renderMessages(r.messages));
    const right = el("section", { class: "pane", id: "tokens-pane" },
      el("div", { class: "pane-head" }, el("h3", {}, el("span", { text: "Tokens " }), status), tabs, legend()), tokBox);
    view.appendChild(el("div", { class: "split" }, left, right));
    if (!samples.length) {
      tokBox.appendChild(el("p", { class: "muted", text: "this rollout has no samples (it failed or produced none)" }));
      return;
    }
    LV.renderTokens(tokBox, samples[si], (done, total) => {
      status.textContent = done < total ? "rendering " + done + " / " + total : total + " tokens";
      document.body.dataset.tokensRendered = String(done);
      document.body.dataset.tokensTotal = String(total);
    });
  };
})(window.LV);
