// The Notes panel (indexed folders, last indexing time, a search box) and the passage a
// source link shows; all through the read-only /v1/assistant/... endpoints.

import { getJSON } from "./api.js";
import { el, sourceLabel } from "./messages.js";

function when(epochSeconds) {
  return epochSeconds ? new Date(epochSeconds * 1000).toLocaleString() : "never";
}

/** Show (or hide again) the indexed text of a cited passage under `item`. */
export async function togglePassage(source, item, onError) {
  const shown = item.querySelector(".passage");
  if (shown) {
    shown.remove();
    return;
  }
  const box = el("blockquote", { className: "passage", textContent: "loading…" });
  item.append(box);
  try {
    const passage = await getJSON("/v1/assistant/passage",
      { path: source.path, start_line: source.start_line, end_line: source.end_line });
    box.textContent = passage.text;
  } catch (error) {
    box.remove();
    onError(error);
  }
}

export class NotesPanel {
  /** `onError(error)` reports failures the way the page reports every error. */
  constructor(onError) {
    this.onError = onError;
    this.panel = document.getElementById("notes");
    this.summary = document.getElementById("notes-summary");
    this.sources = document.getElementById("notes-sources");
    this.results = document.getElementById("notes-results");
    this.query = document.getElementById("notes-query");
    document.getElementById("notes-search").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search(this.query.value);
    });
  }

  /** Load the indexed folders with their counts. */
  async refresh() {
    try {
      const body = await getJSON("/v1/assistant/sources");
      this.summary.textContent = body.data.length
        ? `${body.documents} documents, ${body.chunks} passages; last indexed ${when(body.last_indexed_at)}`
        : "Nothing indexed yet: run `assistant personalize PATH`.";
      this.sources.replaceChildren(...body.data.map((source) => el("li", {},
        el("span", { className: "path", textContent: source.path }),
        el("span", { className: "counts",
          textContent: `${source.documents} documents · ${source.chunks} passages${source.skipped ? ` · ${source.skipped} skipped` : ""} · indexed ${when(source.indexed_at)}` }))));
    } catch (error) {
      this.summary.textContent = "Could not list the notes.";
      this.onError(error);
    }
  }

  /** The best passages for `text`, each folded open to its full text. */
  async search(text) {
    if (!text.trim()) return;
    this.results.replaceChildren(el("li", { className: "hint", textContent: "searching…" }));
    try {
      const body = await getJSON("/v1/assistant/search", { q: text, k: 5 });
      this.results.replaceChildren(...(body.data.length ? body.data.map((hit) => el("li", {},
        el("details", {}, el("summary", {}, sourceLabel(hit), el("span", { className: "score" }, ` ${hit.score.toFixed(3)}`)),
          el("blockquote", { className: "passage", textContent: hit.text })))) : [el("li", { className: "hint", textContent: "no match" })]));
    } catch (error) {
      this.results.replaceChildren();
      this.onError(error);
    }
  }
}
