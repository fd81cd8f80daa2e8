// Conversations, kept in this browser's localStorage only (the server keeps no history):
// several of them, renamed, deleted, exported and imported as JSON.

const STORE_KEY = "assistant.conversations.v1";
const TITLE_CHARS = 48;

/** An id that needs no secure context (crypto.randomUUID does not exist on http://<LAN address>). */
export function newId() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

function blank() {
  const now = Date.now();
  return { id: newId(), title: "", created: now, updated: now, messages: [] };
}

/** A title from the first question, until the person renames it. */
export function titleOf(conversation) {
  if (conversation.title) return conversation.title;
  const first = conversation.messages.find((m) => m.role === "user");
  if (!first) return "New chat";
  const text = first.content.trim().replace(/\s+/g, " ");
  return text.length > TITLE_CHARS ? `${text.slice(0, TITLE_CHARS - 1)}…` : text;
}

function isMessage(m) {
  return m && (m.role === "user" || m.role === "assistant") && typeof m.content === "string";
}

function isConversation(c) {
  return c && typeof c.id === "string" && Array.isArray(c.messages) && c.messages.every(isMessage);
}

/** Every conversation and which one is open; saved after each change. */
export class ConversationStore {
  constructor(storage = localStorage) {
    this.storage = storage;
    this.conversations = [];
    this.currentId = null;
    this.load();
  }

  load() {
    try {
      const saved = JSON.parse(this.storage.getItem(STORE_KEY) || "null");
      if (saved && Array.isArray(saved.conversations)) {
        this.conversations = saved.conversations.filter(isConversation);
        this.currentId = saved.currentId;
      }
    } catch (_) {
      this.conversations = []; // unreadable: start afresh rather than break the page
    }
    if (!this.current()) this.currentId = this.conversations[0]?.id ?? this.create().id;
  }

  /** Write everything; throws (quota exceeded) so the page can say so. */
  save() {
    this.storage.setItem(STORE_KEY, JSON.stringify({ version: 1, currentId: this.currentId, conversations: this.conversations }));
  }

  current() {
    return this.conversations.find((c) => c.id === this.currentId) || null;
  }

  /** Newest first, for the list. */
  sorted() {
    return [...this.conversations].sort((a, b) => b.updated - a.updated);
  }

  create() {
    const conversation = blank();
    this.conversations.push(conversation);
    this.currentId = conversation.id;
    this.save();
    return conversation;
  }

  open(id) {
    if (this.conversations.some((c) => c.id === id)) {
      this.currentId = id;
      this.save();
    }
  }

  rename(id, title) {
    const conversation = this.conversations.find((c) => c.id === id);
    if (!conversation) return;
    conversation.title = title.trim().slice(0, 200);
    this.save();
  }

  remove(id) {
    this.conversations = this.conversations.filter((c) => c.id !== id);
    if (this.currentId === id) this.currentId = this.sorted()[0]?.id ?? null;
    if (!this.current()) this.create();
    this.save();
  }

  /** Mark the conversation changed (a message added or grown) and save it. */
  touch(conversation) {
    conversation.updated = Date.now();
    this.save();
  }

  /** Everything, as the JSON an export file holds. */
  exportJSON() {
    return JSON.stringify({ format: "assistant-conversations", version: 1, exported: new Date().toISOString(),
      conversations: this.conversations }, null, 2);
  }

  /** Add the conversations of an exported file (new ids where they clash); returns how many. */
  importJSON(text) {
    const data = JSON.parse(text);
    const incoming = Array.isArray(data) ? data : data?.conversations;
    if (!Array.isArray(incoming)) throw new Error("not an export of conversations (no 'conversations' list)");
    const valid = incoming.filter(isConversation);
    if (!valid.length) throw new Error("the file holds no valid conversation");
    const known = new Set(this.conversations.map((c) => c.id));
    for (const c of valid) {
      const copy = { ...blank(), ...c, messages: c.messages.map((m) => ({ ...m })) };
      if (known.has(copy.id)) copy.id = newId();
      known.add(copy.id);
      this.conversations.push(copy);
    }
    this.currentId = this.conversations[this.conversations.length - 1].id;
    this.save();
    return valid.length;
  }
}
