// The chat playground: a multi-turn conversation streamed from /v1/chat/completions (fetch + ReadableStream over
// server-sent events), with the sampling settings, JSON mode, tools, per-reply token counts and speed.

import { ApiError, authHeaders, copyText, el, errorOf, getJSON, reportError } from "./api.js";

const DEFAULT_SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 12 },
    age: { type: "integer", minimum: 0, maximum: 120 },
    colour: { enum: ["red", "green", "blue"] },
  },
  required: ["name", "age", "colour"],
  additionalProperties: false,
};

const state = { model: null, messages: [], controller: null, replies: 0 };
const $ = (id) => document.getElementById(id);

export function initChat() {
  $("schema").value = JSON.stringify(DEFAULT_SCHEMA, null, 2);
  $("mode").addEventListener("change", () => { $("schema-box").hidden = $("mode").value !== "json_schema"; });
  $("composer").addEventListener("submit", (event) => { event.preventDefault(); sendPrompt(); });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendPrompt();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.controller) state.controller.abort();
  });
  $("stop-gen").addEventListener("click", () => state.controller && state.controller.abort());
  $("reset").addEventListener("click", reset);
  $("copy-all").addEventListener("click", async () => {
    const ok = await copyText(JSON.stringify(withSystem(state.messages), null, 2));
    status(ok ? "Conversation copied as JSON messages." : "Could not copy.");
  });
  loadModel();
}

export function onChatKeyChange() {
  loadModel();
}

function status(text) {
  $("chat-status").textContent = text;
}

/** The served model's id (requests name it); throws the ApiError that stopped it (a bad key, still loading). */
async function fetchModel() {
  const models = await getJSON("v1/models");
  state.model = models.data[0].id;
  $("model-name").textContent = `model: ${state.model}`;
}

async function loadModel() {
  try {
    await fetchModel();
  } catch (err) {
    if (err instanceof ApiError && err.status === 503) {
      $("model-name").textContent = "model loading…";
      setTimeout(loadModel, 1500);
      return;
    }
    $("model-name").textContent = "";
    reportError(err);
  }
}

function reset() {
  if (state.controller) state.controller.abort();
  state.messages = [];
  $("conversation").replaceChildren($("empty-hint") || "");
  $("empty-hint").hidden = false;
  status("Conversation cleared.");
  $("prompt").focus();
}

function withSystem(messages) {
  const system = $("system").value.trim();
  return system ? [{ role: "system", content: system }, ...messages] : messages;
}

/** The JSON in a settings textarea, or an error shown next to it (and null). */
function parseBox(id, errorId, what) {
  const text = $(id).value.trim();
  $(errorId).textContent = "";
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    $(errorId).textContent = `${what} is not valid JSON: ${e.message}`;
    $(id).focus();
    return null;
  }
}

function requestBody() {
  const body = {
    messages: withSystem(state.messages), stream: true,
    stream_options: { include_usage: true },
    temperature: $("temperature").valueAsNumber, top_p: $("top-p").valueAsNumber,
    max_tokens: $("max-tokens").valueAsNumber,
  };
  for (const key of ["temperature", "top_p", "max_tokens"]) if (Number.isNaN(body[key])) delete body[key];
  const seed = $("seed").valueAsNumber;
  if (!Number.isNaN(seed)) body.seed = seed;
  const stops = $("stop").value.split("\n").filter((s) => s.length > 0).slice(0, 4);
  if (stops.length) body.stop = stops;
  const mode = $("mode").value;
  if (mode === "json_object") body.response_format = { type: "json_object" };
  if (mode === "json_schema") {
    const schema = parseBox("schema", "schema-error", "The schema");
    if (schema === null) return null;
    if (schema === undefined) {
      $("schema-error").textContent = "Enter a JSON schema, or choose another reply format.";
      return null;
    }
    body.response_format = { type: "json_schema", json_schema: { name: "reply", schema, strict: true } };
  }
  const tools = parseBox("tools", "tools-error", "The tools list");
  if (tools === null) return null;
  if (tools !== undefined) {
    body.tools = tools;
    body.tool_choice = $("tool-choice").value;
  }
  return body;
}

function bubble(kind, label, ...content) {
  $("empty-hint").hidden = true;
  const copy = el("button", { type: "button", class: "small", "aria-label": `Copy this ${label.toLowerCase()}` },
    "Copy");
  const node = el("article", { class: `msg ${kind}`, "aria-label": label },
    el("div", { class: "who" }, label, el("span", { class: "spacer" }), copy), ...content);
  copy.addEventListener("click", async () => {
    const text = node.querySelector(".text")?.textContent ?? "";
    status((await copyText(text)) ? "Copied." : "Could not copy.");
  });
  $("conversation").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

function sendPrompt() {
  const text = $("prompt").value;
  if (!text.trim() || state.controller) return;
  $("prompt").value = "";
  state.messages.push({ role: "user", content: text });
  const node = bubble("user", "You", el("div", { class: "text" }, text));
  complete([node], text);
}

/** One streamed assistant turn for the conversation so far. `sent` are the bubbles of what this turn sends; if the
 * request is refused they are marked unsent and taken back out of the history. */
async function complete(sent, retryText = "") {
  const before = state.messages.length - sent.length;
  const body = requestBody();
  if (!body) {
    rollBack(before, sent, retryText, "fix the settings");
    return;
  }
  const reply = new Reply(++state.replies, body.response_format);
  state.controller = new AbortController();
  $("send").disabled = true;
  $("stop-gen").disabled = false;
  status("Generating… (Escape stops)");
  try {
    if (!state.model) await fetchModel();
    body.model = state.model;
    const res = await fetch("v1/chat/completions", {
      method: "POST", headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify(body), signal: state.controller.signal,
    });
    if (!res.ok) throw await errorOf(res);
    await readStream(res, reply);
    reply.finish();
    state.messages.push(reply.message());
    status("");
    if (reply.toolCalls.length) reply.askToolResults(sendToolResults);
  } catch (err) {
    if (err.name === "AbortError") {
      reply.finish("stopped");
      if (reply.content || reply.toolCalls.length) state.messages.push(reply.message());
      status("Stopped.");
    } else {
      const message = reportError(err instanceof TypeError ? new ApiError(0, `Cannot reach the server (${err.message}).`) : err);
      reply.fail(message);
      if (!reply.started) rollBack(before, sent, retryText, "not sent");
      status("");
    }
  } finally {
    state.controller = null;
    $("send").disabled = false;
    $("stop-gen").disabled = true;
  }
}

function rollBack(length, sent, retryText, why) {
  state.messages.length = length;
  for (const node of sent) {
    node.classList.add("unsent");
    node.querySelector(".who").prepend(el("span", { class: "badge bad" }, why));
  }
  if (retryText && !$("prompt").value) $("prompt").value = retryText;
}

function sendToolResults(results) {
  const nodes = results.map(({ call, content }) => {
    state.messages.push({ role: "tool", tool_call_id: call.id, content });
    return bubble("tool-result", `Tool result · ${call.function.name}`,
      el("div", { class: "text" }, content), el("div", { class: "muted" }, `for call ${call.id}`));
  });
  complete(nodes);
}

/** Server-sent events: "data: {json}" blocks separated by a blank line, ending with "data: [DONE]". */
async function readStream(res, reply) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message);
        reply.push(chunk);
      }
    }
  }
}

/** One assistant reply as it streams: its text, reasoning and tool calls, and the numbers shown under it. */
class Reply {
  constructor(n, responseFormat) {
    this.json = Boolean(responseFormat);
    this.content = "";
    this.reasoning = "";
    this.toolCalls = [];
    this.chunks = 0;
    this.usage = null;
    this.finishReason = null;
    this.started = false;
    this.t0 = performance.now();
    this.tFirst = null;
    this.textNode = document.createTextNode("");
    this.textEl = el("div", { class: this.json ? "text json" : "text", id: `reply-${n}`, "data-reply": n },
      this.textNode);
    this.reasoningText = document.createTextNode("");
    this.reasoningEl = el("details", { class: "reasoning", hidden: true, open: true },
      el("summary", {}, "Reasoning"), el("div", { class: "text" }, this.reasoningText));
    this.callsEl = el("div", { class: "tool-calls" });
    this.statsEl = el("div", { class: "stats", "aria-live": "off" }, "waiting for the first token…");
    this.node = bubble("assistant", "Assistant", this.reasoningEl, this.textEl, this.callsEl, this.statsEl);
    this.node.setAttribute("aria-busy", "true");  // screen readers read the reply once, when it is complete
  }

  push(chunk) {
    if (chunk.usage) this.usage = chunk.usage;
    const choice = (chunk.choices || [])[0];
    if (!choice) return;
    const delta = choice.delta || {};
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    let grew = false;
    if (delta.content) {
      this.content += delta.content;
      this.textNode.data = this.content;
      grew = true;
    }
    if (delta.reasoning_content) {
      this.reasoning += delta.reasoning_content;
      this.reasoningText.data = this.reasoning;
      this.reasoningEl.hidden = false;
      grew = true;
    }
    for (const part of delta.tool_calls || []) {
      this.mergeCall(part);
      grew = true;
    }
    if (grew) {
      this.chunks += 1;
      this.started = true;
      if (this.tFirst === null) this.tFirst = performance.now();
      this.statsEl.textContent = `streaming: ${this.chunks} ${this.chunks === 1 ? "chunk" : "chunks"}…`;
      this.node.scrollIntoView({ block: "end" });
    }
  }

  /** OpenAI streams a call as pieces keyed by index (fronde sends each call whole); merge them. */
  mergeCall(part) {
    const i = part.index ?? this.toolCalls.length;
    const call = this.toolCalls[i] ||= { id: "", type: "function", function: { name: "", arguments: "" }, view: null };
    if (part.id) call.id = part.id;
    if (part.function?.name) call.function.name += part.function.name;
    if (part.function?.arguments) call.function.arguments += part.function.arguments;
    let args = call.function.arguments;
    try { args = JSON.stringify(JSON.parse(args), null, 2); } catch { /* still streaming, or not JSON */ }
    const view = el("section", { class: "tool-call", "aria-label": `Tool call ${call.function.name}` },
      el("div", { class: "head" }, `Tool call · ${call.function.name}`),
      el("pre", { class: "args" }, args), el("div", { class: "muted" }, `id ${call.id}`));
    if (call.view) call.view.replaceWith(view);
    else this.callsEl.append(view);
    call.view = view;
  }

  // prompt tokens the server found in its prefix cache (the conversation so far): not prefilled again
  cached() {
    const details = this.usage && this.usage.prompt_tokens_details;
    return details && details.cached_tokens ? details.cached_tokens : 0;
  }

  cachedNote() {
    return this.cached() ? ` (${this.cached()} cached)` : "";
  }

  finish(note = null) {
    const seconds = (performance.now() - this.t0) / 1000;
    const completion = this.usage ? this.usage.completion_tokens : this.chunks;
    const decode = this.tFirst === null ? seconds : (performance.now() - this.tFirst) / 1000;
    const rate = completion > 1 && decode > 0 ? (completion - 1) / decode : completion / seconds;
    const parts = [
      `${completion} ${this.usage ? "tokens" : "chunks"}`,
      `${rate.toFixed(1)} tok/s`,
      this.usage ? `${this.usage.prompt_tokens} prompt tokens${this.cachedNote()}` : null,
      this.tFirst !== null ? `first token ${((this.tFirst - this.t0) / 1000).toFixed(2)} s` : null,
      `${seconds.toFixed(2)} s`,
      note || (this.finishReason ? `finish: ${this.finishReason}` : null),
    ].filter(Boolean);
    this.statsEl.replaceChildren(parts.join(" · "));
    this.statsEl.dataset.completionTokens = completion;
    if (this.usage) {
      this.statsEl.dataset.promptTokens = this.usage.prompt_tokens;
      this.statsEl.dataset.cachedTokens = this.cached();
    }
    this.statsEl.dataset.tokensPerS = rate.toFixed(2);
    if (this.json && this.content) {
      let ok = true;
      try { JSON.parse(this.content); } catch { ok = false; }
      const why = this.finishReason === "length" ? " (cut by max tokens)" : "";
      this.statsEl.append(el("span", { class: `badge ${ok ? "good" : "bad"}` }, ok ? "valid JSON" : `not valid JSON${why}`));
    }
    if (!this.content && !this.toolCalls.length && !note) this.textNode.data = "(empty reply)";
    this.node.setAttribute("aria-busy", "false");
  }

  fail(message) {
    this.node.setAttribute("aria-busy", "false");
    this.statsEl.replaceChildren(el("span", { class: "error" }, message));
    this.node.classList.add("failed");
  }

  message() {
    const msg = { role: "assistant", content: this.content };
    if (this.toolCalls.length) {
      msg.tool_calls = this.toolCalls.map(({ id, type, function: f }) => ({ id, type, function: { ...f } }));
    }
    return msg;
  }

  /** Under the calls: one box per call for its result, and a button that sends them all back to the model. */
  askToolResults(send) {
    const boxes = this.toolCalls.map((call, i) => {
      const id = `tool-result-${this.textEl.dataset.reply}-${i}`;
      const area = el("textarea", { id, rows: 2, class: "code" });
      call.view.append(el("label", { for: id }, `Result of ${call.function.name}`), area);
      return { call, area };
    });
    const button = el("button", { type: "button", class: "primary" }, "Send tool results");
    button.addEventListener("click", () => {
      button.disabled = true;
      for (const { area } of boxes) area.readOnly = true;
      send(boxes.map(({ call, area }) => ({ call: { id: call.id, function: call.function }, content: area.value })));
    });
    this.callsEl.append(button);
    boxes[0].area.focus();
  }
}
