// The server's API as the page uses it: one place for the API key, for error messages and
// for reading the server-sent events of a streamed answer.

const KEY_STORAGE = "assistant.apiKey";

/** An error the server answered, in its own words (OpenAI's `error.message`). */
export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function authHeaders(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

/** The error a failed response carries: `{"error": {"message"}}` (or a bare string). */
async function errorFrom(response) {
  let message = `HTTP ${response.status} ${response.statusText}`.trim();
  let code = null;
  try {
    const error = (await response.json()).error;
    if (typeof error === "string") message = error;
    else if (error && error.message) ({ message, code = null } = error);
  } catch (_) {
    // not JSON (a proxy's page?): the status line is all we have
  }
  return new ApiError(message, response.status, code);
}

/** GET a JSON endpoint of the API (with the key); throws ApiError on a non-2xx answer. */
export async function getJSON(path, params = {}, signal = undefined) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(query ? `${path}?${query}` : path, { headers: authHeaders(), signal, cache: "no-store" });
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

/** `/health` as it is: `{ok, status, ...}`, for 200 (ready) and 503 (loading or failed) alike. */
export async function health() {
  const response = await fetch("/health", { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  return { ok: response.ok, httpStatus: response.status, ...body };
}

/** Split server-sent events out of `buffer`; returns [data payloads, rest of the buffer]. */
export function takeEvents(buffer) {
  const payloads = [];
  let boundary;
  while ((boundary = buffer.indexOf("\n\n")) >= 0) {
    const event = buffer.slice(0, boundary);
    buffer = buffer.slice(boundary + 2);
    const data = event.split("\n").filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
    if (data) payloads.push(data);
  }
  return [payloads, buffer];
}

/**
 * Stream a chat completion: yields each `chat.completion.chunk` (the first carries `plan`
 * and `sources`). Aborting `signal` drops the connection, which the server takes as
 * "stop generating" (before the first token too).
 */
export async function* streamChat(body, signal) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    let payloads;
    [payloads, buffer] = takeEvents(buffer + decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n"));
    for (const data of payloads) {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(chunk.error.message || String(chunk.error), 500, chunk.error.code);
      yield chunk;
    }
  }
  throw new ApiError("the answer stopped before its end (the connection closed)", 0, "stream_cut");
}
