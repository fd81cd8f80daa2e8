// Drawing the messages of a conversation. Model output is only ever set as text
// (textContent), never parsed as HTML: an answer cannot inject markup or script.

/** A DOM element with properties and children (strings become text nodes). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** Copy text; falls back to a selection where the Clipboard API is missing (plain http on a LAN). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = el("textarea", { value: text, readOnly: true, className: "offscreen" });
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

function copyButton(getText) {
  const button = el("button", { type: "button", className: "copy text-button", textContent: "Copy" });
  button.addEventListener("click", async () => {
    try {
      await copyText(getText());
      button.textContent = "Copied";
    } catch (_) {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

/** "path · heading · lines a–b", as a source is cited. */
export function sourceLabel(source) {
  const lines = source.start_line === source.end_line ? `line ${source.start_line}` : `lines ${source.start_line}–${source.end_line}`;
  return [source.path, source.heading, lines].filter(Boolean).join(" · ");
}

function sourcesBlock(sources, onSource) {
  const items = sources.map((source) => {
    const button = el("button", { type: "button", className: "source-link", textContent: sourceLabel(source),
      title: "Show the passage" });
    const item = el("li", { className: "source" }, button);
    button.addEventListener("click", () => onSource(source, item));
    return item;
  });
  return el("details", { className: "sources" }, el("summary", {}, `Sources (${sources.length})`), el("ol", {}, items));
}

const PLAN_FIELDS = ["strategy", "difficulty", "model", "adapter", "backend", "k"];

function planBlock(plan) {
  const rows = PLAN_FIELDS.filter((name) => name in plan).flatMap((name) => [
    el("dt", {}, name), el("dd", {}, plan[name] === null || plan[name] === undefined ? "none" : String(plan[name])),
  ]);
  const reasons = Array.isArray(plan.reasons) ? plan.reasons : [];
  return el("details", { className: "plan" },
    el("summary", {}, `Plan: ${plan.strategy ?? "?"}${plan.difficulty ? ` · ${plan.difficulty}` : ""}`),
    el("dl", {}, rows),
    reasons.length ? el("ul", { className: "reasons" }, reasons.map((r) => el("li", {}, String(r)))) : null);
}

/** One message's element; `update` redraws it in place while an answer streams in. */
export function messageView(message, onSource) {
  const content = el("div", { className: "content" });
  const error = el("p", { className: "message-error", role: "alert", hidden: true });
  const state = el("span", { className: "message-state" });
  const extras = el("div", { className: "extras" });
  const node = el("article", { className: `message ${message.role}`, dataset: { role: message.role } },
    el("div", { className: "bubble" }, content, error),
    el("div", { className: "message-meta" }, copyButton(() => message.content), state),
    extras);
  let drawnExtras = false;
  const update = () => {
    content.textContent = message.content;
    node.classList.toggle("pending", Boolean(message.pending));
    error.hidden = !message.error;
    error.textContent = message.error || "";
    state.textContent = message.pending ? (message.content ? "answering…" : "waiting for the model…")
      : message.stopped ? "stopped" : "";
    if (!drawnExtras && (message.plan || message.sources?.length)) {
      drawnExtras = true; // plan and sources come once, on the first chunk
      if (message.sources?.length) extras.append(sourcesBlock(message.sources, onSource));
      if (message.plan) extras.append(planBlock(message.plan));
    }
  };
  update();
  return { node, update };
}
