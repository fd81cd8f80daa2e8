// The chat page: wires the pickers, the conversation list, the composer (Send and Stop),
// the server's status and the API key prompt together. No framework, no build step.

import { ApiError, apiKey, getJSON, health, setApiKey, streamChat } from "./api.js";
import { ConversationStore, titleOf } from "./conversations.js";
import { el, messageView } from "./messages.js";
import { NotesPanel, togglePassage } from "./notes.js";

const $ = (id) => document.getElementById(id);
const PICKS_KEY = "assistant.picks";
// Small models have small context windows: send the last turns only, not the whole history.
const HISTORY_MESSAGES = 12;
const HEALTH_POLL_LOADING_MS = 1500;
const HEALTH_POLL_READY_MS = 15000;
const DEBUG = new URLSearchParams(location.search).has("debug");

const store = new ConversationStore();
const page = { generation: null, ready: false, keyWanted: false };
const notes = new NotesPanel(showError);

// --- notices and the API key -------------------------------------------------------
function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

/** Report an error as the server gave it; a 401 asks for the API key. */
function showError(error) {
  if (error instanceof ApiError && error.status === 401) askForKey(error.message);
  showNotice(error.message || String(error));
}

function askForKey(reason) {
  const dialog = $("key-dialog");
  $("key-error").textContent = apiKey() ? `The saved key was refused: ${reason}` : "";
  $("key-error").hidden = !apiKey();
  $("key-input").value = "";
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
}

function onKeyDialog(event) {
  event.preventDefault();
  const action = event.submitter?.value ?? "save";
  if (action === "save" && $("key-input").value.trim()) setApiKey($("key-input").value.trim());
  if (action === "forget") setApiKey("");
  $("key-dialog").close();
  if (action !== "cancel") {
    showNotice("");
    loadModels();
    if (!$("notes").hidden) notes.refresh();
  }
}

// --- server status and pickers -----------------------------------------------------
async function pollHealth() {
  let delay = HEALTH_POLL_READY_MS;
  const status = $("server-status");
  try {
    const body = await health();
    const wasReady = page.ready;
    page.ready = body.ok;
    status.dataset.state = body.ok ? "ready" : body.status === "error" ? "error" : "loading";
    status.textContent = body.ok ? `ready · ${body.model?.id ?? "model"}`
      : body.status === "error" ? `model failed to load: ${body.error}` : "model loading…";
    if (!body.ok) delay = HEALTH_POLL_LOADING_MS;
    if (body.ok && !wasReady) loadModels();
  } catch (_) {
    page.ready = false;
    status.dataset.state = "offline";
    status.textContent = "server unreachable";
    delay = HEALTH_POLL_LOADING_MS;
  }
  updateComposer();
  setTimeout(pollHealth, delay);
}

function savedPicks() {
  try {
    return JSON.parse(localStorage.getItem(PICKS_KEY) || "{}");
  } catch (_) {
    return {};
  }
}

function savePicks() {
  localStorage.setItem(PICKS_KEY, JSON.stringify({ model: $("model-picker").value, strategy: $("strategy-picker").value }));
}

async function loadModels() {
  try {
    const body = await getJSON("/v1/models");
    const picker = $("model-picker");
    const options = body.data.map((m) => el("option", { value: m.id },
      `${m.id}${m.default ? " (default)" : ""}${m.loaded ? " ●" : ""}`));
    picker.replaceChildren(el("option", { value: "default" }, "default"), ...options);
    const wanted = savedPicks().model;
    if (wanted && [...picker.options].some((o) => o.value === wanted)) picker.value = wanted;
  } catch (error) {
    showError(error);
  }
}

// --- conversations ------------------------------------------------------------------
function renderConversationList() {
  const list = $("conversation-list");
  list.replaceChildren(...store.sorted().map((c) => {
    const button = el("button", { type: "button", className: "conversation-link", textContent: titleOf(c),
      title: titleOf(c) });
    button.addEventListener("click", () => {
      if (page.generation) return; // finish or stop the answer first
      store.open(c.id);
      renderAll();
      closeSidebarOnPhone();
    });
    return el("li", { className: c.id === store.currentId ? "current" : "" }, button);
  }));
}

function renderMessages() {
  const conversation = store.current();
  const views = conversation.messages.map((m) => messageView(m, onSource).node);
  $("messages").replaceChildren(...(views.length ? views : [$("empty-hint") || hint()]));
  $("conversation-title").textContent = titleOf(conversation);
  scrollToEnd();
}

function hint() {
  return el("p", { id: "empty-hint", className: "hint" }, "Ask anything. Answers drawn from your notes list their sources underneath.");
}

function renderAll() {
  renderConversationList();
  renderMessages();
  updateComposer();
}

function onSource(source, item) {
  togglePassage(source, item, showError);
}

function scrollToEnd() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function renameCurrent() {
  const conversation = store.current();
  const title = window.prompt("Name this conversation", titleOf(conversation));
  if (title !== null && title.trim()) {
    store.rename(conversation.id, title);
    renderAll();
  }
}

function deleteCurrent() {
  if (page.generation) return;
  if (!window.confirm(`Delete “${titleOf(store.current())}”? This cannot be undone.`)) return;
  store.remove(store.currentId);
  renderAll();
}

function exportConversations() {
  const blob = new Blob([store.exportJSON()], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `assistant-conversations-${new Date().toISOString().slice(0, 10)}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

async function importConversations(event) {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  try {
    const count = store.importJSON(await file.text());
    showNotice(`Imported ${count} conversation${count === 1 ? "" : "s"}.`);
    renderAll();
  } catch (error) {
    showNotice(`Import failed: ${error.message}`);
  }
}

// --- asking and stopping -------------------------------------------------------------
function updateComposer() {
  const busy = Boolean(page.generation);
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("send").disabled = !page.ready;
  $("send").title = page.ready ? "" : "The model is loading";
}

function debugExtras() {
  if (!DEBUG) return {};
  const extras = JSON.parse($("debug-extras").value || "{}");
  if (typeof extras !== "object" || extras === null || Array.isArray(extras)) throw new Error("request extras must be a JSON object");
  return extras;
}

function requestBody(conversation) {
  const history = conversation.messages.filter((m) => !m.pending && !m.error && m.content)
    .slice(-HISTORY_MESSAGES).map((m) => ({ role: m.role, content: m.content }));
  return { model: $("model-picker").value, strategy: $("strategy-picker").value, messages: history, ...debugExtras() };
}

function saveQuietly(conversation) {
  try {
    store.touch(conversation);
  } catch (error) {
    showNotice(`Could not save the conversation in this browser: ${error.message}`);
  }
}

async function send(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || page.generation) return;
  showNotice("");
  const conversation = store.current();
  conversation.messages.push({ role: "user", content: text });
  let body;
  try {
    body = requestBody(conversation);
  } catch (error) {
    conversation.messages.pop();
    showNotice(error.message);
    return;
  }
  $("prompt").value = "";
  const answer = { role: "assistant", content: "", pending: true };
  conversation.messages.push(answer);
  saveQuietly(conversation);
  renderAll();
  const view = messageView(answer, onSource);
  $("messages").lastElementChild.replaceWith(view.node);
  await generate(conversation, answer, view, body);
}

async function generate(conversation, answer, view, body) {
  const controller = new AbortController();
  page.generation = controller;
  updateComposer();
  try {
    for await (const chunk of streamChat(body, controller.signal)) {
      if (chunk.plan) answer.plan = chunk.plan;
      if (chunk.sources) answer.sources = chunk.sources;
      answer.content += chunk.choices?.[0]?.delta?.content ?? "";
      view.update();
      scrollToEnd();
    }
  } catch (error) {
    if (controller.signal.aborted) answer.stopped = true;
    else {
      answer.error = error.message || String(error);
      showError(error);
    }
  } finally {
    answer.pending = false;
    page.generation = null;
    view.update();
    saveQuietly(conversation);
    renderConversationList();
    updateComposer();
  }
}

function stop() {
  // Dropping the connection is what stops the server: it cancels on disconnect.
  if (page.generation) page.generation.abort();
}

// --- layout on a phone ----------------------------------------------------------------
function toggle(panelId, buttonId, show) {
  const panel = $(panelId);
  const open = show ?? panel.hidden;
  panel.hidden = !open;
  panel.classList.toggle("open", open);
  $(buttonId).setAttribute("aria-expanded", String(open));
  return open;
}

function closeSidebarOnPhone() {
  if (window.matchMedia("(max-width: 760px)").matches) toggle("conversations", "toggle-conversations", false);
}

function wire() {
  $("composer").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault(); // Enter sends; Shift+Enter is a new line
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", stop);
  $("new-conversation").addEventListener("click", () => {
    if (page.generation) return;
    store.create();
    renderAll();
    closeSidebarOnPhone();
    $("prompt").focus();
  });
  $("rename-conversation").addEventListener("click", renameCurrent);
  $("delete-conversation").addEventListener("click", deleteCurrent);
  $("export-conversations").addEventListener("click", exportConversations);
  $("import-conversations").addEventListener("change", importConversations);
  $("model-picker").addEventListener("change", savePicks);
  $("strategy-picker").addEventListener("change", savePicks);
  $("toggle-conversations").addEventListener("click", () => toggle("conversations", "toggle-conversations"));
  $("close-conversations").addEventListener("click", () => toggle("conversations", "toggle-conversations", false));
  $("toggle-notes").addEventListener("click", () => { if (toggle("notes", "toggle-notes")) notes.refresh(); });
  $("close-notes").addEventListener("click", () => toggle("notes", "toggle-notes", false));
  $("change-key").addEventListener("click", () => askForKey(""));
  $("key-form").addEventListener("submit", onKeyDialog);
}

function start() {
  wire();
  const picks = savedPicks();
  if (picks.strategy) $("strategy-picker").value = picks.strategy;
  $("debug-extras-label").hidden = !DEBUG;
  // the list is open beside the chat on a wide screen, behind ☰ on a phone
  toggle("conversations", "toggle-conversations", !window.matchMedia("(max-width: 760px)").matches);
  renderAll();
  pollHealth();
}

start();
