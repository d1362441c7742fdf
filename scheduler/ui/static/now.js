// The Now page's live updates: the running session's journal over server-sent events (/events). Every text is
// set with textContent, never as HTML: what an agent wrote shows as text.
"use strict";
(function () {
  const steps = document.getElementById("steps");
  if (!steps) return;
  const elapsed = document.getElementById("elapsed");
  const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  const query = new URLSearchParams({
    session: steps.dataset.session || "", offset: steps.dataset.offset || "0", live: steps.dataset.live || "0",
  });
  const count = (e) => { // the counters: the task, turns, tokens, cost, when the session started
    if (e.kind === "task") { set("task", e.task_id + " " + e.title); set("turns", "-"); set("tokens", "-"); }
    if (e.kind === "session" && elapsed && typeof e.at === "number") elapsed.dataset.started = String(e.at);
    if (typeof e.turns === "number") set("turns", String(e.turns));
    if (typeof e.cost_usd === "number") set("cost", "$" + e.cost_usd.toFixed(2));
    if (typeof e.tokens_in === "number") {
      const out = typeof e.tokens_out === "number" ? e.tokens_out : 0;
      set("tokens", e.tokens_in.toLocaleString("en-US") + " in, " + out.toLocaleString("en-US") + " out");
    }
  };
  const source = new EventSource("/events?" + query.toString());
  source.addEventListener("run", (message) => {
    const e = JSON.parse(message.data);
    count(e);
    if (e.agent && e.agent.kind === "usage") return; // the counters say it
    const item = document.createElement("li");
    item.className = "step " + e.kind;
    const when = document.createElement("time");
    when.textContent = typeof e.at === "number" ? new Date(e.at * 1000).toISOString().slice(11, 19) : "";
    const line = document.createElement("span");
    line.className = "line";
    line.textContent = e.line;
    item.append(when, " ", line);
    steps.prepend(item);
    const none = document.getElementById("no-steps");
    if (none) none.remove();
  });
  source.addEventListener("agent", (message) => set("agent", JSON.parse(message.data).agent));
  source.addEventListener("reload", () => { source.close(); window.location.reload(); });
  setInterval(() => {
    if (elapsed && elapsed.dataset.started) {
      elapsed.textContent = Math.round(Date.now() / 1000 - Number(elapsed.dataset.started)) + " s";
    }
  }, 1000);
})();
