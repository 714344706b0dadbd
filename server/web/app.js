// The Vesalius page: upload a study, view it, ask about it. Plain DOM, no framework, nothing fetched from elsewhere.
// Text from the server is always set as textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { study: null, thread: null, index: 0, window: "", drag: null, heatmap: null, pendingStudy: null };

function token() { return sessionStorage.getItem("vesalius-token") || ""; }

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token()) headers.set("Authorization", `Bearer ${token()}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("token-panel").hidden = false;
    $("token").focus();
    throw new Error("this server needs an API token: enter it above");
  }
  if (!response.ok) {
    let problem = `HTTP ${response.status}`;
    try { const body = await response.json(); problem = `${body.error}. ${body.hint || ""}`; } catch (_) { /* not JSON */ }
    throw new Error(problem);
  }
  return response;
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("vesalius-token", $("token").value.trim());
  $("token-panel").hidden = true;
});

function audience() { return document.querySelector("input[name=audience]:checked").value; }

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("files").files) form.append("files", file);
  if ($("modality").value) form.append("modality", $("modality").value);
  $("upload-button").disabled = true;
  $("study-status").textContent = "Uploading, checking and de-identifying the study…";
  try {
    const study = await (await api("/api/studies", { method: "POST", body: form })).json();
    const compare = $("compare").checked && state.thread;
    state.study = study;
    // Compared: the next question opens the new study in this conversation, and the one before becomes its prior.
    if (compare) state.pendingStudy = study.study_id;
    else await newThread();
    showStudy(study.summary);
    $("study-status").textContent = compare
      ? `Study ${study.study_id} opened: ${describe(study.summary)}. The next answer compares it with the earlier one.`
      : `Study ${study.study_id} opened: ${describe(study.summary)}.`;
    $("study-status").className = "";
  } catch (error) {
    $("study-status").textContent = error.message;
    $("study-status").className = "error";
  } finally {
    $("upload-button").disabled = false;
  }
});

// A thread is opened for one audience; switching audience opens a new thread on the same study.
for (const radio of document.querySelectorAll("input[name=audience]")) {
  radio.addEventListener("change", async () => { if (state.study) await newThread(); });
}

// Without a study the thread answers questions about medicine; a study opened later starts a thread of its own.
async function newThread() {
  const body = JSON.stringify(state.study ? { study_id: state.study.study_id, audience: audience() } : { audience: audience() });
  const created = await (await api("/api/threads", {
    method: "POST", headers: { "Content-Type": "application/json" }, body,
  })).json();
  state.thread = created.thread_id;
  $("messages").replaceChildren();
  $("exports").hidden = true;
  $("context-status").textContent = "";
}

$("context-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("context-file").files[0];
  const text = $("context-text").value.trim();
  if (!file && !text) return;
  $("context-button").disabled = true;
  try {
    if (!state.thread) await newThread();
    // The file goes as it is; the server tells a FHIR report or a DICOM SR from a text one by its content.
    const type = file ? (/\.(dcm|sr)$/i.test(file.name) ? "application/dicom" : /\.json$/i.test(file.name) ? "application/fhir+json" : "text/plain") : "text/plain";
    const kept = await (await api(`/api/threads/${state.thread}/context`, {
      method: "PUT", headers: { "Content-Type": type }, body: file || text,
    })).json();
    $("context-status").textContent = `Context kept for this conversation (de-identified): ${kept.text}`;
    $("context-status").className = "";
  } catch (error) {
    $("context-status").textContent = error.message;
    $("context-status").className = "error";
  } finally {
    $("context-button").disabled = false;
  }
});

for (const button of document.querySelectorAll("#exports button")) {
  button.addEventListener("click", async () => {
    const format = button.dataset.format;
    try {
      const response = await api(`/api/threads/${state.thread}/export?format=${format}`);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await response.blob());
      link.download = `vesalius-${state.thread}${format === "dicom-sr" ? ".dcm" : format === "fhir" ? ".fhir.json" : ".json"}`;
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (error) {
      $("progress").textContent = error.message;
    }
  });
}

function describe(summary) {
  const parts = [summary.modality, summary.body_part, `${summary.columns}×${summary.rows}`];
  if (summary.frames > 1) parts.push(`${summary.frames} images`);
  return parts.filter(Boolean).join(", ");
}

// -- the viewer -------------------------------------------------------------------------------------------------

function showStudy(summary) {
  $("viewer").hidden = false;
  state.index = summary.frame_shown;
  state.window = "";
  state.heatmap = null;
  $("slice").max = summary.frames - 1;
  $("slice").value = state.index;
  $("window").value = "";
  $("window").disabled = summary.colour;
  $("overlay").hidden = true;
  $("overlay-on").checked = false;
  $("overlay-on").disabled = true;
  $("opacity").disabled = true;
  $("summary").textContent = describe(summary) + (summary.physical_unit ? `, values in ${summary.physical_unit}` : "");
  render();
}

let rendering = null;
async function render() {
  if (!state.study) return;
  const params = new URLSearchParams();
  if (state.window) params.set("window", state.window);
  const path = `/api/studies/${state.study.study_id}/images/${state.index}?${params}`;
  const ticket = (rendering = path);
  try {
    const blob = await (await api(path)).blob();
    if (ticket !== rendering) return; // a newer image was asked for meanwhile
    const old = $("image").src;
    $("image").src = URL.createObjectURL(blob);
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    $("slice-label").textContent = `${state.index + 1} of ${Number($("slice").max) + 1}`;
    $("window-label").textContent = state.window;
  } catch (error) {
    $("study-status").textContent = error.message;
  }
}

function step(delta) {
  const next = Math.min(Number($("slice").max), Math.max(0, state.index + delta));
  if (next !== state.index) { state.index = next; $("slice").value = next; render(); }
}

$("slice").addEventListener("input", () => { state.index = Number($("slice").value); render(); });
$("window").addEventListener("change", () => { state.window = $("window").value; render(); });
$("stage").addEventListener("wheel", (event) => { event.preventDefault(); step(Math.sign(event.deltaY)); });
$("stage").addEventListener("keydown", (event) => {
  const moves = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -5, PageDown: 5 };
  if (event.key in moves) { event.preventDefault(); step(moves[event.key]); }
});

// Drag: up/down changes the level (centre), left/right the width, from the window in use.
$("stage").addEventListener("pointerdown", (event) => {
  const w = state.study && state.study.summary.window;
  if (!w || state.study.summary.colour) return;
  const [c, wd] = /^-?[\d.]+,[\d.]+$/.test(state.window) ? state.window.split(",").map(Number) : [w.center, w.width];
  state.drag = { x: event.clientX, y: event.clientY, center: c, width: wd };
  $("stage").setPointerCapture(event.pointerId);
});
$("stage").addEventListener("pointermove", (event) => {
  if (!state.drag) return;
  const scale = Math.max(1, state.drag.width / 256);
  const center = state.drag.center - (event.clientY - state.drag.y) * scale;
  const width = Math.max(1, state.drag.width + (event.clientX - state.drag.x) * scale);
  const next = `${center.toFixed(0)},${width.toFixed(0)}`;
  if (next !== state.window) { state.window = next; $("window").value = ""; render(); }
});
$("stage").addEventListener("pointerup", () => { state.drag = null; });

$("overlay-on").addEventListener("change", () => { $("overlay").hidden = !$("overlay-on").checked; });
$("opacity").addEventListener("input", () => { $("overlay").style.opacity = $("opacity").value / 100; });

async function showHeatmap(url) {
  const blob = await (await api(url)).blob();
  $("overlay").src = URL.createObjectURL(blob);
  $("overlay").style.opacity = $("opacity").value / 100;
  $("overlay-on").disabled = false;
  $("opacity").disabled = false;
  $("overlay-on").checked = true;
  $("overlay").hidden = false;
}

// -- the conversation -------------------------------------------------------------------------------------------

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("ask-button").disabled = true;
  if (!state.thread) {
    try { await newThread(); } catch (error) { $("progress").textContent = error.message; $("ask-button").disabled = false; return; }
  }
  const item = document.createElement("li");
  const asked = document.createElement("p");
  asked.className = "question";
  asked.textContent = question;
  item.append(asked);
  $("messages").append(item);
  try {
    const answer = await ask(question);
    item.append(renderAnswer(answer));
    $("question").value = "";
    $("exports").hidden = Boolean(answer.clarification);
    $("exports").querySelector("[data-format=dicom-sr]").hidden = !answer.study;  // an SR is filed with a study
    const heat = (answer.tools || []).find((t) => t.heatmap_path);
    if (heat) await showHeatmap(heat.heatmap_path);
  } catch (error) {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = error.message;
    item.append(p);
  } finally {
    $("ask-button").disabled = false;
    $("progress").textContent = "";
  }
});

// POST with a streamed reply: EventSource cannot POST, so the event stream is read from fetch.
async function ask(question) {
  const response = await api(`/api/threads/${state.thread}/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(state.pendingStudy ? { question, study_id: state.pendingStudy } : { question }),
  });
  state.pendingStudy = null;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] || "null");
      if (event === "progress") $("progress").textContent = `Working: ${data.step}…`;
      if (event === "token") $("progress").textContent += data.text;
      if (event === "answer") return data;
      if (event === "error") throw new Error(`${data.error}. ${data.hint || ""}`);
    }
  }
  throw new Error("the answer stream ended early: ask again");
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function renderAnswer(answer) {
  const box = document.createElement("div");
  for (const note of answer.urgent || []) box.append(el("p", note, "urgent"));
  box.append(el("p", answer.direct_answer, "direct"));
  // The answer text opens with the direct answer, already shown above it.
  const body = answer.answer.startsWith(answer.direct_answer)
    ? answer.answer.slice(answer.direct_answer.length).trim()
    : answer.answer;
  box.append(withCitations(body, answer.thread_id, answer.turn));
  if (answer.clarification) {  // Vesalius asks before it answers: the next message is the reply
    const list = el("ul", undefined, "options");
    for (const o of answer.clarification.options) list.append(el("li", o));
    box.append(list);
    return box;
  }
  box.append(el("p", answer.uncertainty, "uncertainty"));
  const findings = findingsTable(answer.tools || []);
  if (findings) box.append(findings);
  const comparison = comparisonTable(answer.comparison);
  if (comparison) box.append(comparison);
  const claims = claimsList(answer.claims || []);
  if (claims) box.append(claims);
  if ((answer.citations || []).length) {
    box.append(el("h3", "Sources"));
    const list = el("ol", undefined, "citations");
    for (const c of answer.citations) {
      const li = el("li");
      li.id = `c-${answer.thread_id}-${answer.turn}-${c.number}`;
      li.value = c.number;
      const codes = [c.umls_cui && `UMLS ${c.umls_cui}`, ...(c.snomed_ct || []).map((s) => `SNOMED CT ${s}`)];
      li.append(el("strong", c.name), el("span", ` (${codes.filter(Boolean).join(", ") || c.concept_id}) — ${c.source}: `));
      li.append(el("span", c.passage));
      list.append(li);
    }
    box.append(list);
  }
  for (const w of answer.warnings || []) box.append(el("p", w, "small"));
  return box;
}

// "[2]" in the answer becomes a link to source 2, so each claim leads to its evidence.
function withCitations(text, thread, turn) {
  const p = el("p", undefined, "answer-text");
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    p.append(document.createTextNode(text.slice(last, match.index)));
    const a = el("a", match[0]);
    a.href = `#c-${thread}-${turn}-${match[1]}`;
    p.append(a);
    last = match.index + match[0].length;
  }
  p.append(document.createTextNode(text.slice(last)));
  return p;
}

function findingsTable(tools) {
  const rows = [];
  for (const t of tools.filter((t) => t.applied)) {
    for (const p of t.probabilities || []) {
      const outside = p.in_training_range === false ? " (image unlike the training images: no calibrated meaning)" : "";
      const above = p.above_threshold === null || p.above_threshold === undefined ? "" : p.above_threshold ? "above" : "below";
      rows.push([t.tool, p.label, shown(p.probability) + outside, above && `${above} ${p.threshold}`]);
    }
    if (t.anomaly) {
      rows.push([t.tool, "how unusual", `${t.anomaly.normal_percentile.toFixed(0)}th percentile of normal images`,
        t.anomaly.unusual ? "unusual" : "within normal"]);
    }
  }
  if (!rows.length) return null;
  const table = el("table");
  table.append(el("caption", "Findings: calibrated probabilities, not verdicts"));
  const head = el("tr");
  for (const h of ["tool", "finding", "probability", "screening threshold"]) head.append(el("th", h));
  table.append(head);
  for (const r of rows) {
    const tr = el("tr");
    for (const cell of r) tr.append(el("td", cell));
    table.append(tr);
  }
  return table;
}

function comparisonTable(c) {
  if (!c) return null;
  const table = el("table", undefined, "comparison");
  table.append(el("caption", `Compared with the prior study (${c.prior_from})${c.note ? ": " + c.note : ""}`));
  const head = el("tr");
  for (const h of ["tool", "prior", "current", "change"]) head.append(el("th", h));
  table.append(head);
  for (const ch of c.changes) {
    const tr = el("tr");
    for (const cell of [ch.tool, ch.prior, ch.current, ch.change]) tr.append(el("td", cell));
    table.append(tr);
  }
  return table;
}

// Each sentence with what supports it; a sentence of the model's that nothing supports is marked.
function claimsList(claims) {
  const shownClaims = claims.filter((c) => c.evidence.length || !c.supported);
  if (!shownClaims.length) return null;
  const details = el("details", undefined, "claims");
  details.append(el("summary", `Evidence for ${shownClaims.length} sentence(s)`));
  const list = el("ul");
  for (const c of shownClaims) {
    const refs = [...new Set(c.evidence.map((e) => e.ref))].join(", ") || "no support found";
    list.append(el("li", `${c.supported ? "" : "? "}${c.sentence} ← ${refs}`, c.supported ? "" : "unsupported"));
  }
  details.append(list);
  return details;
}

function shown(p) { return p > 0.99 ? "> 0.99" : p < 0.01 ? "< 0.01" : p.toFixed(2); }
