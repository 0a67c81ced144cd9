// Live view of one migration task: progress bar, log lines, outcome, cancel.
//
// Reads its settings from the JSON in #migration-config, connects to the task's
// WebSocket, and on a lost connection reconnects with exponential back-off,
// asking only for the messages after the last seq it has. The server splits long
// runs of messages over several frames: a snapshot carries the first stored
// messages and "log"/"logs" frames the rest, and a replay answer ends with its
// "replay" frame. Lines are placed by seq and shown once whatever frame brings
// them. Every text from the server is written with textContent, so markup in log
// lines shows literally.
(function () {
  "use strict";

  const FINAL_STATES = new Set([
    "succeeded", "failed", "crashed", "cancelled", "timed_out", "lost",
  ]);
  const MESSAGE_TYPES = new Set(["info", "warning", "error"]);
  const STANDARD_FIELDS = new Set([
    "task_id", "seq", "event", "message", "message_type", "progress", "timestamp",
    "state", "exit_code", "signal", "error",
  ]);
  // Close codes after which reconnecting cannot help.
  const FATAL_CLOSE_CODES = {
    4400: "the task id or resume position is invalid",
    4403: "you may not watch this task (log in again, or ask its owner)",
    4404: "no task has this id",
  };
  const MIN_RECONNECT_MS = 500;
  const MAX_RECONNECT_MS = 10000;
  const PING_INTERVAL_MS = 25000;
  const REPLAY_DELAYS_MS = [2000, 4000, 8000, 16000, 30000];

  const config = JSON.parse(document.getElementById("migration-config").textContent);
  const elements = {
    state: document.getElementById("state"),
    connection: document.getElementById("connection"),
    progress: document.getElementById("progress"),
    progressBar: document.querySelector("#progress .progress-bar"),
    progressLabel: document.querySelector("#progress .progress-label"),
    log: document.getElementById("log"),
    notice: document.getElementById("notice"),
    outcome: document.getElementById("outcome"),
    cancelForm: document.getElementById("cancel-form"),
    cancelButton: document.getElementById("cancel"),
  };

  const seen = new Set();
  const gaps = new Map(); // "after:before" -> {after, before, attempt}
  let lastSeq = 0;
  let progress = -1;
  let ended = false;
  let finishedSeen = false;
  let socket = null;
  let reconnectDelay = MIN_RECONNECT_MS;
  let reconnectTimer = null;
  let pingTimer = null;
  let stopped = false;

  // Rendering.

  function setConnection(state, text) {
    elements.connection.dataset.state = state;
    elements.connection.textContent = text;
  }

  function showNotice(text, kind) {
    elements.notice.textContent = text;
    elements.notice.dataset.kind = kind || "";
    elements.notice.hidden = !text;
  }

  function setState(state) {
    if (typeof state !== "string" || !state) {
      return;
    }
    elements.state.dataset.state = state;
    elements.state.className = "state state-" + state.replace(/[^a-z_]/g, "");
    elements.state.textContent = state.replace(/_/g, " ");
  }

  function updateProgress(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return;
    }
    const percent = Math.max(0, Math.min(100, Math.round(value)));
    if (percent <= progress) {
      return; // The bar never moves backwards.
    }
    progress = percent;
    elements.progress.setAttribute("aria-valuenow", String(percent));
    elements.progressBar.style.width = percent + "%";
    elements.progressLabel.textContent = percent + "%";
  }

  function formatTime(timestamp) {
    const moment = new Date(timestamp);
    return Number.isNaN(moment.getTime()) ? String(timestamp ?? "") : moment.toLocaleTimeString();
  }

  function extraFields(message) {
    const extra = {};
    let found = false;
    for (const [key, value] of Object.entries(message)) {
      if (!STANDARD_FIELDS.has(key)) {
        extra[key] = value;
        found = true;
      }
    }
    return found ? JSON.stringify(extra) : "";
  }

  function buildLine(message, seq) {
    const type = MESSAGE_TYPES.has(message.message_type) ? message.message_type : "info";
    const line = document.createElement("li");
    line.className = "log-line log-" + type;
    line.dataset.seq = seq === null ? "" : String(seq);
    line.dataset.type = type;
    line.dataset.event = String(message.event ?? "log");

    const time = document.createElement("time");
    time.className = "log-time";
    time.textContent = formatTime(message.timestamp);
    const text = document.createElement("span");
    text.className = "log-text";
    text.textContent = String(message.message ?? "");
    line.append(time, text);

    const extra = extraFields(message);
    if (extra) {
      const options = document.createElement("span");
      options.className = "log-options";
      options.textContent = extra;
      line.append(options);
    }
    return line;
  }

  function insertLine(line, seq) {
    if (seq === null || seq > lastSeq) {
      elements.log.append(line);
      return;
    }
    // A replayed message that fills a gap goes before the first later line.
    for (const other of elements.log.children) {
      const otherSeq = Number.parseInt(other.dataset.seq, 10);
      if (otherSeq > seq) {
        elements.log.insertBefore(line, other);
        return;
      }
    }
    elements.log.append(line);
  }

  function renderMessage(message) {
    if (typeof message !== "object" || message === null) {
      return;
    }
    const seq = Number.isInteger(message.seq) ? message.seq : null;
    if (seq !== null) {
      if (seen.has(seq)) {
        return; // Duplicate, already shown.
      }
      seen.add(seq);
    }
    insertLine(buildLine(message, seq), seq);
    if (seq !== null && seq > lastSeq) {
      lastSeq = seq;
    }
    updateProgress(message.progress);
    if (message.event === "started") {
      setState("running");
    } else if (message.event === "finished") {
      finishedSeen = true;
      showOutcome(message);
    }
  }

  function showOutcome(outcome) {
    ended = true;
    setState(outcome.state);
    updateProgress(outcome.progress);
    document.getElementById("outcome-state").textContent = String(outcome.state ?? "");
    document.getElementById("outcome-exit-code").textContent = String(outcome.exit_code ?? "—");
    document.getElementById("outcome-signal").textContent = String(outcome.signal ?? "—");

    const error = outcome.error;
    const traceback = document.getElementById("outcome-traceback");
    if (error && typeof error === "object") {
      document.getElementById("outcome-error").textContent =
        String(error.type ?? "") + ": " + String(error.message ?? "");
      traceback.textContent = String(error.traceback ?? "");
      traceback.hidden = !error.traceback;
    } else {
      document.getElementById("outcome-error").textContent = "—";
      traceback.hidden = true;
    }
    elements.outcome.hidden = false;
    if (elements.notice.dataset.kind === "cancel") {
      showNotice("");
    }
    if (elements.cancelButton) {
      elements.cancelButton.disabled = true;
      elements.cancelButton.hidden = true;
    }
    closeWhenComplete();
  }

  function applyStatus(status) {
    if (!status || typeof status !== "object") {
      return;
    }
    setState(status.state);
    updateProgress(status.progress);
    if (FINAL_STATES.has(status.state)) {
      showOutcome(status);
    }
  }

  // Messages the server could not find yet, asked for again later.

  function rememberGap(after, before) {
    const key = after + ":" + before;
    if (!gaps.has(key)) {
      gaps.set(key, { after, before, attempt: 0 });
      scheduleReplay(gaps.get(key));
    }
  }

  function scheduleReplay(gap) {
    if (gap.attempt >= REPLAY_DELAYS_MS.length) {
      gaps.delete(gap.after + ":" + gap.before);
      showNotice("Some log lines (" + (gap.after + 1) + " to " + (gap.before - 1) +
        ") could not be loaded; reload the page to try again.");
      closeWhenComplete();
      return;
    }
    window.setTimeout(function () {
      send({ action: "replay", after: gap.after, before: gap.before });
    }, REPLAY_DELAYS_MS[gap.attempt]);
    gap.attempt += 1;
  }

  function handleReplay(data) {
    (data.messages || []).forEach(renderMessage);
    const gap = gaps.get(data.after + ":" + data.before);
    if (!gap) {
      return;
    }
    for (let seq = gap.after + 1; seq < gap.before; seq += 1) {
      if (!seen.has(seq)) {
        scheduleReplay(gap);
        return;
      }
    }
    gaps.delete(gap.after + ":" + gap.before);
    closeWhenComplete();
  }

  // The connection.

  function send(payload) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(payload));
    }
  }

  // A status may say the task ended before its last messages arrived, so the
  // socket stays open until the finished message itself was shown.
  function closeWhenComplete() {
    if (finishedSeen && gaps.size === 0 && socket) {
      stopped = true;
      socket.close(1000, "task ended");
    }
  }

  function handleFrame(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (error) {
      showNotice("The server sent a frame that is not JSON.");
      return;
    }
    switch (data.type) {
      case "snapshot":
        reconnectDelay = MIN_RECONNECT_MS;
        setConnection("live", "live");
        (data.messages || []).forEach(renderMessage);
        applyStatus(data.task);
        break;
      case "log":
        renderMessage(data.message);
        break;
      case "logs":
        (data.messages || []).forEach(renderMessage);
        break;
      case "gap":
        rememberGap(data.after, data.before);
        break;
      case "replay":
        handleReplay(data);
        break;
      case "status":
        applyStatus(data.task);
        break;
      case "cancel_result":
      case "error":
        showNotice(String(data.message ?? ""));
        break;
      default:
        break; // "pong" and types added later need nothing here.
    }
  }

  function connect() {
    reconnectTimer = null;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + window.location.host + config.urls.websocket +
      "?after=" + lastSeq;
    setConnection("connecting", "connecting");
    socket = new WebSocket(url);
    socket.addEventListener("message", handleFrame);
    socket.addEventListener("open", function () {
      pingTimer = window.setInterval(function () { send({ action: "ping" }); }, PING_INTERVAL_MS);
    });
    socket.addEventListener("close", handleClose);
  }

  function handleClose(event) {
    window.clearInterval(pingTimer);
    socket = null;
    if (stopped) {
      setConnection("closed", ended ? "closed (task ended)" : "closed");
      return;
    }
    const fatal = FATAL_CLOSE_CODES[event.code];
    if (fatal) {
      stopped = true;
      setConnection("closed", "closed: " + fatal);
      return;
    }
    const seconds = (reconnectDelay / 1000).toFixed(1);
    setConnection("reconnecting", "disconnected, reconnecting in " + seconds + " s");
    reconnectTimer = window.setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, MAX_RECONNECT_MS);
  }

  // Cancel through the cancel view, with the form's CSRF token.

  async function cancelTask(event) {
    event.preventDefault();
    const form = elements.cancelForm;
    const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    elements.cancelButton.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": token, Accept: "application/json" },
      });
      const body = await response.json().catch(function () { return {}; });
      if (response.ok) {
        // The task may have ended while the request was in flight.
        if (!ended) {
          showNotice("Cancel requested; waiting for the job to stop.", "cancel");
        }
      } else {
        showNotice(String(body.error || body.message || "Cancel failed (HTTP " + response.status + ")."));
        elements.cancelButton.disabled = ended;
      }
    } catch (error) {
      showNotice("Cancel failed: " + String(error && error.message));
      elements.cancelButton.disabled = ended;
    }
  }

  if (elements.cancelForm) {
    elements.cancelForm.addEventListener("submit", cancelTask);
  }
  applyStatus(config.status);
  connect();
})();
