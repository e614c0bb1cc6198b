// Entry point: ask the server what it offers (/ui/config.json), wire the API key box, and route between the views
// by the URL's hash: #/chat, #/runs, #/runs/<name>.

import { apiKey, clearNotice, notify, setApiKey } from "./api.js";
import { initChat, onChatKeyChange } from "./chat.js";
import { showRun, showRunsList, stopDashboard } from "./dashboard.js";

let config = { chat: false, runs: false, auth: false };

function setView(name) {
  for (const view of ["chat", "runs"]) {
    document.getElementById(`${view}-view`).hidden = view !== name;
    const link = document.getElementById(`nav-${view}`);
    if (view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [view, ...rest] = hash.split("/");
  if (view === "runs" && config.runs) {
    setView("runs");
    if (rest.length && rest[0]) showRun(decodeURIComponent(rest[0]));
    else showRunsList();
    return;
  }
  stopDashboard();
  if (config.chat) {
    setView("chat");
    if (view !== "chat") history.replaceState(null, "", "#/chat");
  } else if (config.runs) {
    location.hash = "#/runs";
  }
}

function initKeyForm() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  form.hidden = !config.auth;
  if (!config.auth) return;
  input.value = apiKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    clearNotice();
    onKeyChange();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    setApiKey("");
    input.value = "";
    input.focus();
    notify("API key forgotten. Enter one to use this server.", "info");
  });
  if (!apiKey()) {
    notify("This server needs an API key: enter it in the API key box at the top.", "info");
  }
}

function onKeyChange() {
  if (config.chat) onChatKeyChange();
  route();
}

async function start() {
  try {
    const res = await fetch("ui/config.json", { cache: "no-store" });
    config = await res.json();
  } catch (e) {
    notify(`Cannot reach the server (${e.message}).`);
    return;
  }
  document.getElementById("nav-chat").hidden = !config.chat;
  document.getElementById("nav-runs").hidden = !config.runs;
  document.title = config.chat ? "fronde playground" : "fronde dashboard";
  initKeyForm();
  if (config.chat) initChat();
  window.addEventListener("hashchange", route);
  route();
}

start();
