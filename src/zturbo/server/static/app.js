// zturbo web UI: plain JS, no build step. Every call goes through api() so that a --token server
// works the same way (the token lives in localStorage; images are fetched as blobs with it).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  health: null, aspect: "1:1", mp: "1", job: null, offset: 0, selected: [], items: new Map(),
  blobs: new Map(),
  input: null, mask: null, typedSize: null, uploading: false,  // the chosen input image and mask (uploads)
  control: null,  // the chosen control image (an upload), on a server with a ControlNet
};

// ---- API -------------------------------------------------------------------------------------
function authHeaders() {
  const t = localStorage.getItem("zturbo-token");
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { ...authHeaders(), ...(opts.headers || {}) } });
  if (res.status === 401) {
    askToken();
    throw new Error("this server needs a token");
  }
  return res;
}

async function apiJson(path, opts = {}) {
  const res = await api(path, opts);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || `HTTP ${res.status}`);
  return body;
}

function askToken() {
  const d = $("token-dialog");
  if (!d.open) d.showModal();
}

$("token-form").addEventListener("submit", () => {
  localStorage.setItem("zturbo-token", $("token").value.trim());
  init();
});

async function imageUrl(name) {
  // a blob URL made with the auth header (an <img src> cannot send one)
  if (state.blobs.has(name)) return state.blobs.get(name);
  const res = await api("/api/images/" + encodeURIComponent(name));
  if (!res.ok) throw new Error("image " + name + " is missing");
  const url = URL.createObjectURL(await res.blob());
  state.blobs.set(name, url);
  return url;
}

function message(text, kind = "") {
  const m = $("message");
  m.textContent = text;
  m.className = kind;
  m.setAttribute("role", kind === "error" ? "alert" : "status");
  // an error shows where the user is looking: scrolled into view if it is off screen
  if (kind === "error" && text) m.scrollIntoView({ block: "nearest" });
}

// ---- the form ----------------------------------------------------------------------------------
function fillDefaults(h) {
  $("model").textContent = h.label;
  $("precision").textContent = h.precision;
  $("device").textContent = h.device;
  $("steps").value = h.defaults.steps;
  $("steps").min = h.limits.min_steps;
  $("steps").max = h.limits.max_steps;
  $("guidance").value = h.defaults.guidance;
  $("guidance").max = h.limits.max_guidance;
  $("n").max = h.limits.max_images;
  $("width").value = h.defaults.width;
  $("height").value = h.defaults.height;
  setStrength(h.defaults.strength);
  setControlScale(h.defaults.control_scale ?? 0.75);
  // serve --controlnet: its jobs need a control image, so the picker is shown (and Generate waits for one)
  $("control").hidden = !h.controlnet;
  $("image-control-hint").hidden = !h.controlnet;
  $("control-name").textContent = h.controlnet ? `· ${h.controlnet.name} (${h.controlnet.variant})` : "";
  syncGenerate();
  const aspects = $("aspects");
  aspects.replaceChildren();
  for (const a of Object.keys(h.presets)) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = a;
    b.dataset.aspect = a;
    b.setAttribute("aria-pressed", String(a === state.aspect));
    b.addEventListener("click", () => { state.aspect = a; applyPreset(); });
    aspects.append(b);
  }
  const mp = $("megapixels");
  mp.replaceChildren();
  for (const m of Object.keys(h.presets[state.aspect])) {
    const o = document.createElement("option");
    o.value = m;
    o.textContent = m + " MP";
    mp.append(o);
  }
  syncPreset();
  showQueue(h.queue);
}

function applyPreset() {
  const [w, h] = state.health.presets[state.aspect][state.mp];
  $("width").value = w;
  $("height").value = h;
  syncPreset();
}

function syncPreset() {
  // the aspect chips and the megapixels shown follow the size in the boxes: a preset's size lights up its
  // aspect and MP; any other typed size shows its own MP ("custom") and no aspect (1 MP = 1024x1024)
  const w = Number($("width").value), h = Number($("height").value);
  let match = null;
  for (const [a, sizes] of Object.entries(state.health.presets)) {
    for (const [m, [pw, ph]] of Object.entries(sizes)) if (!match && pw === w && ph === h) match = [a, m];
  }
  const mp = $("megapixels");
  mp.querySelector('option[value="custom"]')?.remove();
  if (match) {
    [state.aspect, state.mp] = match;
    mp.value = state.mp;
  } else {
    const o = document.createElement("option");
    o.value = "custom";
    o.textContent = w > 0 && h > 0 ? `${+(w * h / 1048576).toFixed(2)} MP (custom)` : "custom";
    mp.append(o);
    mp.value = "custom";
  }
  for (const b of $("aspects").children) {
    b.setAttribute("aria-pressed", String(match !== null && b.dataset.aspect === state.aspect));
  }
}

$("megapixels").addEventListener("change", (e) => {
  if (e.target.value === "custom") return; // the typed size's own entry: nothing to apply
  state.mp = e.target.value;
  applyPreset();
});
for (const id of ["width", "height"]) $(id).addEventListener("input", syncPreset);

function seedLocked() { return $("seed-lock").getAttribute("aria-pressed") === "true"; }
function setSeedLock(on) {
  $("seed-lock").setAttribute("aria-pressed", String(on));
  $("seed-lock").textContent = on ? "Locked" : "Random";
}
$("seed-lock").addEventListener("click", () => setSeedLock(!seedLocked()));
$("seed").addEventListener("input", () => setSeedLock($("seed").value.trim() !== ""));
$("seed-dice").addEventListener("click", () => {
  const r = new Uint32Array(1);
  crypto.getRandomValues(r);
  $("seed").value = String(r[0]);
  setSeedLock(true);
});

function numberOrText(v) {
  // send what was typed; the server gives the same message as the CLI when it is wrong
  const t = v.trim();
  return t !== "" && !Number.isNaN(Number(t)) ? Number(t) : t;
}

function formRequest() {
  const req = {
    prompt: $("prompt").value,
    negative_prompt: $("negative").value,
    steps: numberOrText($("steps").value),
    guidance: numberOrText($("guidance").value),
    n: numberOrText($("n").value),
    width: numberOrText($("width").value),
    height: numberOrText($("height").value),
  };
  if (sizeSource()) {
    // the output takes the input's (or the control image's) size: the server picks it (or the nearest
    // multiples of 16 with resize)
    delete req.width;
    delete req.height;
    if ($("resize").checked) req.resize = true;
  }
  if (state.input) {
    req.image = state.input.name;
    req.strength = numberOrText($("strength").value);
    if (state.mask) req.mask = state.mask.name;
    else if (paint.on && paint.upload) req.mask = paint.upload.name;
  }
  if (state.control) {
    req.control_image = state.control.name;
    req.control_scale = numberOrText($("control-scale").value);
    req.control_type = $("control-canny").checked ? "canny" : "none";
  }
  const loras = chosenLoras();
  if (loras.length) req.loras = loras;
  if (seedLocked() && $("seed").value.trim() !== "") req.seed = $("seed").value.trim(); // a string: exact above 2^53
  return req;
}

// ---- an input image (image-to-image) and a mask (inpainting), uploaded when chosen -----------------
function setStrength(v) {
  $("strength").value = v;
  $("strength-range").value = v;
}
$("strength-range").addEventListener("input", () => { $("strength").value = $("strength-range").value; });
$("strength").addEventListener("input", () => { $("strength-range").value = $("strength").value; });

function kib(bytes) {
  return bytes < 1024 * 1024 ? `${Math.max(1, Math.round(bytes / 1024))} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`;
}

function pixelSize(url) {
  // the size the browser decodes: only asked of files the server has already checked (never a bomb)
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => reject(new Error("this browser cannot show the image"));
    img.src = url;
  });
}

async function upload(file, role) {
  // the server checks the file (format, size cap, decompression bomb); its one-line error is shown as is
  const body = new FormData();
  body.append("file", file);
  body.append("role", role);
  state.uploading = true;
  syncGenerate();
  message(`uploading ${file.name}…`);
  try {
    const up = await apiJson("/api/uploads", { method: "POST", body });
    const url = URL.createObjectURL(file);
    const [width, height] = await pixelSize(url);
    message("");
    return { ...up, file: file.name, url, width, height };
  } catch (err) {
    message(`${file.name}: ${err.message}`, "error");
    return null;
  } finally {
    state.uploading = false;
    syncGenerate();
  }
}

async function chooseImage(file) {
  const up = await upload(file, "image");
  $("image-file").value = "";
  if (!up) return;
  rememberTypedSize();
  if (state.input) URL.revokeObjectURL(state.input.url);
  setInput(up);
}

function sizeSource() {
  // the image whose size the output takes: the input image, else the control image (or none: typed)
  return state.input || state.control;
}

function rememberTypedSize() {
  // the size typed before an image took over the size fields, given back when the last one is removed
  if (!sizeSource()) state.typedSize = [$("width").value, $("height").value];
}

function sourceRemoved() {
  if (!sizeSource()) {
    $("resize").checked = false;
    if (state.typedSize) [$("width").value, $("height").value] = state.typedSize;
  }
  showInput();
  syncPreset();
}

function showUpload(role, up) {
  // the accepted upload's thumbnail and "name · W×H · size" line (input image, control image)
  $(`${role}-thumb`).src = up.url;
  $(`${role}-info`).textContent = `${up.file} · ${up.width}×${up.height}` + (up.bytes ? ` · ${kib(up.bytes)}` : "");
}

function setInput(up) {
  state.input = up;
  stopPainting();  // a mask painted on another image does not fit this one
  showUpload("image", up);
  showInput();
}

function removeImage() {
  if (!state.input) return;
  URL.revokeObjectURL(state.input.url);
  state.input = null;
  removeMask();
  stopPainting();
  sourceRemoved();
}

async function chooseMask(file) {
  const up = await upload(file, "mask");
  $("mask-file").value = "";
  if (!up) return;
  URL.revokeObjectURL(up.url);
  setMask(up, `mask: ${up.file} · ${up.width}×${up.height}`);
}

function setMask(up, text) {
  state.mask = up;
  stopPainting();  // a chosen mask file replaces a painted one
  $("mask-info").textContent = text;
  showInput();
}

function removeMask() {
  state.mask = null;
  showInput();
}

function nearest16(v) {
  // the server's rounding (Python's round: a half goes to the even multiple), so the size shown is the one made
  const q = v / 16, f = Math.floor(q), r = q - f;
  return Math.max(16, (r > 0.5 || (r === 0.5 && f % 2 === 1) ? f + 1 : f) * 16);
}

function showInput() {
  // with an input image (or a control image) the size fields show the output's size (that image's) and
  // cannot be typed in
  const on = state.input !== null, src = sizeSource();
  $("image-chosen").hidden = !on;
  $("image-pick").hidden = on;
  $("image-knobs").hidden = !on;
  $("mask-chosen").hidden = state.mask === null;
  $("mask-pick").hidden = state.mask !== null;
  $("paint").hidden = !paint.on;
  $("paint-start").hidden = paint.on;
  $("control-chosen").hidden = state.control === null;
  $("control-pick").hidden = state.control !== null;
  document.querySelector("fieldset.size").disabled = src !== null;
  $("size-note").hidden = src === null;
  $("resize-row").hidden = src === null;
  syncGenerate();
  if (!src) return;
  const { width: w, height: h } = src;
  const [nw, nh] = [nearest16(w), nearest16(h)];
  const resize = $("resize").checked;
  const what = on && state.control ? "images" : on ? "input" : "control image";
  $("width").value = resize ? nw : w;
  $("height").value = resize ? nh : h;
  $("resize-label").textContent = `Resize the ${what} to ${nw}×${nh} (sides must be multiples of 16)`;
  $("size-note").textContent = resize
    ? `The ${what === "images" ? "images are" : what + " is"} resized to ${nw}×${nh}; the output has that size.`
    : on ? `The output takes the input image's size (${w}×${h}). Remove the image to type a size.`
      : `The output takes the control image's size (${w}×${h}).`;
  syncPreset();
}

// ---- a control image (serve --controlnet), uploaded when chosen like the input image ------------------
function setControlScale(v) {
  $("control-scale").value = v;
  $("control-scale-range").value = v;
}
$("control-scale-range").addEventListener("input", () => { $("control-scale").value = $("control-scale-range").value; });
$("control-scale").addEventListener("input", () => { $("control-scale-range").value = $("control-scale").value; });

async function chooseControl(file) {
  const up = await upload(file, "control");
  $("control-file").value = "";
  if (!up) return;
  rememberTypedSize();
  setControl(up);
}

function setControl(up) {
  if (state.control) URL.revokeObjectURL(state.control.url);
  state.control = up;
  showUpload("control", up);
  showInput();
}

function removeControl() {
  if (!state.control) return;
  URL.revokeObjectURL(state.control.url);
  state.control = null;
  sourceRemoved();
}

function controlMissing() {
  // a server with a ControlNet refuses a job without a control image: Generate waits for one
  return Boolean(state.health && state.health.controlnet) && state.control === null;
}

function syncGenerate() {
  const missing = controlMissing();
  $("generate").disabled = state.job !== null || state.uploading || missing;
  $("generate-note").hidden = !missing;
  $("generate-note").textContent = missing
    ? `Choose a control image first: this server's ControlNet (${state.health.controlnet.name}) needs one.` : "";
}

$("image-file").addEventListener("change", (e) => { if (e.target.files[0]) chooseImage(e.target.files[0]); });
$("mask-file").addEventListener("change", (e) => { if (e.target.files[0]) chooseMask(e.target.files[0]); });
$("image-remove").addEventListener("click", removeImage);
$("control-file").addEventListener("change", (e) => { if (e.target.files[0]) chooseControl(e.target.files[0]); });
$("control-remove").addEventListener("click", removeControl);
$("mask-remove").addEventListener("click", removeMask);
$("resize").addEventListener("change", showInput);
// drop an image anywhere on the form (on the ControlNet box: the control image)
$("gen-form").addEventListener("dragover", (e) => {
  if (![...e.dataTransfer.types].includes("Files")) return;
  e.preventDefault();
  $("gen-form").classList.add("dropping");
});
$("gen-form").addEventListener("dragleave", () => $("gen-form").classList.remove("dropping"));
$("gen-form").addEventListener("drop", (e) => {
  $("gen-form").classList.remove("dropping");
  const file = e.dataTransfer.files[0];
  if (!file) return;
  e.preventDefault();
  if (!$("control").hidden && e.target.closest && e.target.closest("#control")) chooseControl(file);
  else chooseImage(file);
});

// ---- mask painting: a canvas over the input image, at the input's own pixel size --------------------
// Strokes are white on a transparent canvas (shown over the image); the mask sent is that canvas on black,
// uploaded as a PNG through /api/uploads when the job is submitted (white = repaint, black = keep).
const paint = { on: false, erase: false, drawing: false, last: null, painted: false, upload: null };
const maskCtx = $("mask-canvas").getContext("2d");

function startPainting() {
  if (!state.input) return;
  state.mask = null;  // a painted mask replaces a chosen file
  const { width: w, height: h, url } = state.input;
  const c = $("mask-canvas");
  [c.width, c.height] = [w, h];
  $("paint-img").src = url;
  const size = $("brush-size");
  size.max = Math.max(8, Math.round(Math.max(w, h) / 3));
  size.value = Math.max(1, Math.round(Math.max(w, h) / 16));
  showBrush();
  setTool(false);
  Object.assign(paint, { on: true, painted: false, upload: null });
  showInput();
}

function stopPainting() {
  Object.assign(paint, { on: false, drawing: false, painted: false, upload: null });
  maskCtx.clearRect(0, 0, $("mask-canvas").width, $("mask-canvas").height);
  if (state.input) showInput();
}

function setTool(erase) {
  paint.erase = erase;
  $("tool-brush").setAttribute("aria-pressed", String(!erase));
  $("tool-eraser").setAttribute("aria-pressed", String(erase));
}

function showBrush() { $("brush-px").textContent = `${$("brush-size").value} px`; }

function canvasPoint(e) {
  const c = $("mask-canvas"), r = c.getBoundingClientRect();
  return { x: (e.clientX - r.left) * c.width / r.width, y: (e.clientY - r.top) * c.height / r.height };
}

function stroke(a, b) {
  maskCtx.globalCompositeOperation = paint.erase ? "destination-out" : "source-over";
  Object.assign(maskCtx, { strokeStyle: "#fff", lineWidth: Number($("brush-size").value), lineCap: "round",
                           lineJoin: "round" });
  maskCtx.beginPath();
  maskCtx.moveTo(a.x, a.y);
  maskCtx.lineTo(b.x, b.y);
  maskCtx.stroke();
  paint.upload = null;  // changed since the last upload
  if (!paint.erase) paint.painted = true;
}

$("mask-canvas").addEventListener("pointerdown", (e) => {
  $("mask-canvas").setPointerCapture(e.pointerId);
  paint.drawing = true;
  paint.last = canvasPoint(e);
  stroke(paint.last, paint.last);  // a tap paints a dot
  e.preventDefault();
});
$("mask-canvas").addEventListener("pointermove", (e) => {
  if (!paint.drawing) return;
  const p = canvasPoint(e);
  stroke(paint.last, p);
  paint.last = p;
});
for (const ev of ["pointerup", "pointercancel"]) $("mask-canvas").addEventListener(ev, () => { paint.drawing = false; });
$("paint-start").addEventListener("click", startPainting);
$("paint-remove").addEventListener("click", stopPainting);
$("paint-clear").addEventListener("click", () => {
  maskCtx.clearRect(0, 0, $("mask-canvas").width, $("mask-canvas").height);
  Object.assign(paint, { painted: false, upload: null });
});
$("tool-brush").addEventListener("click", () => setTool(false));
$("tool-eraser").addEventListener("click", () => setTool(true));
$("brush-size").addEventListener("input", showBrush);

async function uploadPaintedMask() {
  // nothing painted is an empty mask (keep everything): say so rather than send it or drop it silently
  if (!paint.painted) {
    message("the mask is empty: paint where the image should change, or press No mask", "error");
    return false;
  }
  const c = $("mask-canvas");
  const out = document.createElement("canvas");
  [out.width, out.height] = [c.width, c.height];
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(c, 0, 0);
  const blob = await new Promise((resolve) => out.toBlob(resolve, "image/png"));
  const up = await upload(new File([blob], "painted-mask.png", { type: "image/png" }), "mask");
  if (!up) return false;
  URL.revokeObjectURL(up.url);
  paint.upload = up;
  return true;
}

// ---- LoRAs from the server's --lora-dir (the picker is shown only when it has one) -----------------
async function loadLoras() {
  const list = await apiJson("/api/loras");
  $("loras").hidden = !list.enabled;
  const box = $("lora-list");
  box.replaceChildren();
  list.loras.forEach((l, i) => {
    const row = document.createElement("div");
    row.className = "lora-row";
    row.dataset.name = l.name;
    row.innerHTML = `<label class="check"><input type="checkbox" id="lora-${i}"> <span></span></label>
      <div class="row lora-scale" hidden>
        <label class="grow">Scale <input type="range" min="0" max="2" step="0.05" value="1"></label>
        <label>&nbsp;<input type="number" step="0.05" value="1" inputmode="decimal"></label>
      </div>`;
    row.querySelector("span").textContent = `${l.name} · ${kib(l.bytes)}`;
    const [check, range, num] = row.querySelectorAll("input");
    range.setAttribute("aria-label", `scale of ${l.name} (slider)`);
    num.setAttribute("aria-label", `scale of ${l.name}`);
    check.addEventListener("change", () => { row.querySelector(".lora-scale").hidden = !check.checked; });
    range.addEventListener("input", () => { num.value = range.value; });
    num.addEventListener("input", () => { range.value = num.value; });
    box.append(row);
  });
  if (list.enabled && !list.loras.length) $("lora-hint").textContent = "The server's --lora-dir holds no .safetensors files.";
}

function chosenLoras() {
  return [...$("lora-list").children].filter((row) => row.querySelector("input[type=checkbox]").checked)
    .map((row) => ({ name: row.dataset.name, scale: numberOrText(row.querySelector("input[type=number]").value) }));
}

function setLoras(records) {
  // tick exactly the per-request LoRAs of a recipe (the ones merged at load time are always on); names missing here are returned
  const want = new Map(records.filter((r) => !r.fused).map((r) => [r.name, r.scale]));
  for (const row of $("lora-list").children) {
    const on = want.has(row.dataset.name);
    const [check, range, num] = row.querySelectorAll("input");
    check.checked = on;
    row.querySelector(".lora-scale").hidden = !on;
    if (on) range.value = num.value = want.get(row.dataset.name);
    want.delete(row.dataset.name);
  }
  return [...want.keys()];
}

// ---- a job: submit, follow its events, cancel ---------------------------------------------------
$("gen-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (state.job || state.uploading || controlMissing()) return;
  message("");
  if (paint.on && !paint.upload && !(await uploadPaintedMask())) return;
  let job;
  try {
    const res = await api("/api/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(formRequest()),
    });
    job = await res.json().catch(() => ({}));
    if (res.status === 503) throw new Error((job.detail || "the queue is full") + ` (retry in ${res.headers.get("Retry-After")} s)`);
    if (!res.ok) throw new Error(job.detail || `HTTP ${res.status}`);
  } catch (err) {
    // nothing was queued: the last job's "done" and its image must not stay on screen as if they answered
    $("progress").hidden = false;
    $("preview").hidden = true;
    $("bar").value = 0;
    setStatus("not started: fix the settings", "");
    message(err.message, "error");
    return;
  }
  if (!seedLocked()) $("seed").value = job.seed;
  track(job);
});

function track(job) {
  // follow a job's progress; remembered for this tab, so a reload picks it up again
  state.job = job;
  sessionStorage.setItem("zturbo-job", job.id);
  syncGenerate();
  $("cancel").disabled = false;
  $("progress").hidden = false;
  $("preview").hidden = true;
  $("bar").max = job.total;
  $("bar").value = job.step || 0;
  setStatus(job.state, "");
  showQueue({ ...((state.health && state.health.queue) || {}), running: job.id });
  follow(job).catch((err) => finish({ state: "failed", error: err.message }));
}

async function resume() {
  const id = sessionStorage.getItem("zturbo-job");
  if (!id || state.job) return;
  try {
    const job = await apiJson("/api/jobs/" + id);
    if (!["done", "failed", "cancelled"].includes(job.state)) track(job);
    else sessionStorage.removeItem("zturbo-job");
  } catch {
    sessionStorage.removeItem("zturbo-job"); // forgotten by a restarted server
  }
}

$("cancel").addEventListener("click", async () => {
  if (!state.job) return;
  $("cancel").disabled = true;
  setStatus("cancelling…", "");
  try {
    await api("/api/jobs/" + state.job.id, { method: "DELETE" });
  } catch (err) {
    message(err.message, "error");
  }
});

function setStatus(text, count) {
  $("status").textContent = text;
  $("step-count").textContent = count;
}

async function follow(job) {
  // server-sent events read with fetch (EventSource cannot send an Authorization header)
  const res = await api(`/api/jobs/${job.id}/events`);
  if (!res.ok) throw new Error(`events: HTTP ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
  if (state.job && state.job.id === job.id) {
    const final = await apiJson("/api/jobs/" + job.id);
    finish(final);
  }
}

function onEvent(event, d) {
  if (!state.job || d.id !== state.job.id) return;
  if (event === "queued") {
    setStatus(d.position > 1 ? `queued (${d.position} waiting)` : "queued", "");
    refreshHealth();
  }
  else if (event === "started") setStatus("running", "");
  else if (event === "step") {
    $("bar").value = d.step;
    const img = state.job.n > 1 ? ` · image ${d.image + 1}/${state.job.n}` : "";
    setStatus("running", `pass ${d.image_step}/${d.image_steps}${img}`);
    if (d.preview) {
      $("preview").src = d.preview;
      $("preview").hidden = false;
    }
  } else if (["done", "failed", "cancelled"].includes(event)) finish({ ...d, state: event });
}

async function finish(job) {
  if (!state.job) return;
  state.job = null;
  sessionStorage.removeItem("zturbo-job");
  syncGenerate();
  $("cancel").disabled = true;
  const names = (job.images || []).map((i) => (typeof i === "string" ? i : i.name));
  if (job.state === "done") {
    setStatus("done", "");
    $("bar").value = $("bar").max;
    const notes = (job.warnings || []).map((w) => "note: " + w).join(" · ");
    message(`saved ${names.length} image${names.length === 1 ? "" : "s"}` + (notes ? " · " + notes : ""), "ok");
    await loadHistory(true);
    if (names.length) {
      // the finished image replaces the last pass preview
      imageUrl(names[0]).then((u) => { $("preview").src = u; $("preview").hidden = false; }).catch(() => {});
    }
  } else if (job.state === "cancelled") {
    setStatus("cancelled", "");
    $("preview").hidden = true; // it showed an image that was thrown away
    message("cancelled: nothing was saved", "");
  } else {
    setStatus("failed", "");
    $("preview").hidden = true;
    message(job.error || "the job failed", "error");
  }
  refreshHealth();
}

// ---- history gallery -----------------------------------------------------------------------------
async function loadHistory(reset) {
  if (reset) {
    state.offset = 0;
    state.items.clear();
    $("gallery").replaceChildren();
  }
  const page = await apiJson(`/api/history?offset=${state.offset}&limit=24`);
  $("total").textContent = `(${page.total})`;
  for (const item of page.items) addCard(item);
  state.offset += page.items.length;
  $("more").hidden = page.next_offset === null;
  state.selected = state.selected.filter((n) => state.items.has(n));
  syncSelection();
}
$("more").addEventListener("click", () => loadHistory(false));

function addCard(item) {
  state.items.set(item.name, item);
  const fig = document.createElement("figure");
  fig.className = "card";
  fig.dataset.name = item.name;
  const img = document.createElement("img");
  img.alt = item.prompt || "(empty prompt)";
  img.title = item.prompt;
  img.addEventListener("click", () => openViewer(item));
  if (!item.missing) imageUrl(item.name).then((u) => { img.src = u; }).catch(() => {});
  const cap = document.createElement("figcaption");
  const text = document.createElement("span");
  text.className = "prompt";
  // two lines, never cut: a seed is up to 20 digits and the card is narrow on a phone
  const size = document.createElement("span");
  size.textContent = `${item.width}×${item.height}`;
  const seed = document.createElement("span");
  seed.className = "seed";
  seed.textContent = `seed ${item.seed}`;
  text.append(size, " ", seed);
  const pick = document.createElement("label");
  pick.className = "pick";  // the whole label is the tap target, not only the small box
  const box = document.createElement("input");
  box.type = "checkbox";
  box.setAttribute("aria-label", "select for compare");
  box.addEventListener("change", () => toggleSelect(item.name, box.checked));
  pick.append(box);
  cap.append(text, pick);
  fig.append(img, cap);
  $("gallery").append(fig);
}

function toggleSelect(name, on) {
  state.selected = state.selected.filter((n) => n !== name);
  if (on) state.selected.push(name);
  while (state.selected.length > 2) state.selected.shift(); // keep the last two ticked
  syncSelection();
}

function syncSelection() {
  for (const fig of $("gallery").children) {
    const on = state.selected.includes(fig.dataset.name);
    fig.classList.toggle("selected", on);
    fig.querySelector("input").checked = on;
  }
  $("compare-btn").disabled = state.selected.length !== 2;
  $("compare-btn").textContent = `Compare (${state.selected.length}/2)`;
}

// ---- viewer: recipe, download, copy the CLI command, reuse --------------------------------------
let viewing = null;
async function openViewer(item) {
  viewing = item;
  $("viewer-title").textContent = item.prompt || "(empty prompt)";
  $("viewer-cmd").textContent = item.command;
  const url = await imageUrl(item.name).catch(() => "");
  $("viewer-img").src = url;
  $("viewer-img").alt = item.prompt;
  $("download").href = url;
  $("download").download = item.name;
  const r = item.recipe, p = r.params;
  const rows = [
    ["prompt", p.prompt], ["negative", p.negative_prompt || "—"], ["seed", item.seed],
    ["size", `${p.width}×${p.height}`], ["steps", `${p.steps} (${r.passes} passes counted)`],
    ["guidance", p.guidance], ["rng", p.rng], ["model", (r.model && r.model.label) || ""],
    ["precision", item.precision],
    ["device", r.device], ["seconds", Object.entries(r.timings || {}).map(([k, v]) => `${k} ${v}`).join(", ")],
    ["warnings", (r.warnings || []).join("; ") || "—"], ["file", item.name],
  ];
  if ((r.loras || []).length) {
    rows.splice(4, 0, ["LoRAs", r.loras.map((l) => `${l.name} × ${l.scale}${l.fused ? " (merged at load)" : ""}`).join(", ")]);
  }
  if (p.control_image) {
    const cn = r.controlnet || {};
    rows.splice(4, 0, ["ControlNet", `${cn.name || "?"} (${cn.variant || "?"})`],
      ["control image", baseName(p.control_image)], ["control scale", p.control_scale ?? "—"],
      ["control type", p.control_type === "canny" ? "canny edges" : "none (the image as given)"]);
  }
  if (p.image) {
    // image-to-image / inpainting: the uploads it started from, by name (the server's path is not useful here)
    const base = baseName;
    rows.splice(4, 0, ["input image", base(p.image)], ["strength", p.strength ?? "—"]);
    if (p.mask) rows.splice(5, 0, ["mask", base(p.mask)]);
  }
  const dl = $("viewer-recipe");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = String(v ?? "");
    dl.append(dt, dd);
  }
  $("viewer").showModal();
}

$("copy-cmd").addEventListener("click", async () => {
  const text = viewing ? viewing.command : "";
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const range = document.createRange(); // fallback: select it so Ctrl-C / long-press copies
    range.selectNodeContents($("viewer-cmd"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand && document.execCommand("copy");
  }
  $("copy-cmd").textContent = "Copied ✓";
  setTimeout(() => { $("copy-cmd").textContent = "Copy CLI command"; }, 1500);
});

$("reuse").addEventListener("click", async () => {
  const r = viewing.recipe, p = r.params;
  const gone = setLoras(r.loras || []);
  // the job's input image, mask and strength too (or none: a text-to-image job clears a chosen image)
  const restored = p.image ? await restoreInput(p) : (removeImage(), true);
  const controlled = await restoreControl(p, r);
  $("prompt").value = p.prompt;
  $("negative").value = p.negative_prompt || "";
  $("steps").value = p.steps;
  $("guidance").value = p.guidance;
  $("width").value = p.width;
  $("height").value = p.height;
  syncPreset();
  $("resize").checked = sizeSource() !== null && Boolean(p.resize);
  if (sizeSource()) showInput(); // the chosen input (or control) image still sets the size
  $("seed").value = viewing.seed;
  setSeedLock(true);
  $("viewer").close();
  $("prompt").focus();
  if (gone.length) message(`not in the server's --lora-dir any more: ${gone.join(", ")} (that image used it)`, "error");
  else if (restored && controlled) message("");
});

function baseName(path) {
  return String(path).split(/[\\/]/).pop();
}

async function fetchUpload(name) {
  // the uploads a job started from are kept in the output folder: fetched back by name
  const res = await api("/api/uploads/" + encodeURIComponent(name));
  if (!res.ok) throw new Error(`its upload ${name} is no longer on the server: choose the file again`);
  return res.blob();
}

async function restoreControl(p, r) {
  // the job's control image, scale and type (or none: a job without one clears a chosen control image)
  if (!p.control_image) {
    removeControl();
    return true;
  }
  if (!(state.health && state.health.controlnet)) {
    const name = (r.controlnet && r.controlnet.name) || "a ControlNet";
    message(`that image used ${name}; this server has no ControlNet (start it with --controlnet FILE)`, "error");
    return false;
  }
  try {
    const name = baseName(p.control_image);
    const blob = await fetchUpload(name);
    const url = URL.createObjectURL(blob);
    const [width, height] = await pixelSize(url);
    rememberTypedSize();
    setControl({ name, file: name, url, width, height, bytes: blob.size });
    setControlScale(p.control_scale ?? state.health.defaults.control_scale ?? 0.75);
    $("control-canny").checked = p.control_type === "canny";
    return true;
  } catch (err) {
    message(`the control image of that job: ${err.message}`, "error");
    return false;
  }
}

async function restoreInput(p) {
  const base = baseName;
  try {
    const name = base(p.image);
    const blob = await fetchUpload(name);
    const url = URL.createObjectURL(blob);
    const [width, height] = await pixelSize(url);
    rememberTypedSize();
    if (state.input) URL.revokeObjectURL(state.input.url);
    $("resize").checked = Boolean(p.resize);
    setInput({ name, file: name, url, width, height, bytes: blob.size });
    setStrength(p.strength);
    state.mask = null;
    if (p.mask) {
      const mask = base(p.mask);
      await fetchUpload(mask);
      setMask({ name: mask }, `mask: ${mask} (from the history)`);
    }
    showInput();
    return true;
  } catch (err) {
    message(`the input image of that job: ${err.message}`, "error");
    return false;
  }
}

// ---- compare two with a slider --------------------------------------------------------------------
$("compare-btn").addEventListener("click", async () => {
  const [a, b] = state.selected.map((n) => state.items.get(n));
  $("cmp-a").src = await imageUrl(a.name);
  $("cmp-b").src = await imageUrl(b.name);
  $("cmp-a-label").textContent = `A: seed ${a.seed} · ${a.steps} steps · g ${a.guidance}`;
  $("cmp-b-label").textContent = `B: seed ${b.seed} · ${b.steps} steps · g ${b.guidance}`;
  $("compare-box").style.aspectRatio = `${a.width} / ${a.height}`;
  // the box fits the dialog's height too, so the slider and the whole image are on screen together
  $("compare-box").style.setProperty("--ratio", String(a.width / a.height));
  $("cmp-slider").value = 50;
  slide();
  $("compare").showModal();
});

function slide() {
  const v = Number($("cmp-slider").value);
  $("cmp-a").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("cmp-line").style.left = `${v}%`;
}
$("cmp-slider").addEventListener("input", slide);
// drag on the image: the pointer is captured (it may leave the box), and the browser's own image drag
// and touch panning are off (draggable=false, touch-action: none in style.css)
function slideTo(e) {
  const r = $("compare-box").getBoundingClientRect();
  $("cmp-slider").value = Math.round(Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)) * 100);
  slide();
}
$("compare-box").addEventListener("pointerdown", (e) => {
  $("compare-box").setPointerCapture(e.pointerId);
  slideTo(e);
  e.preventDefault();
});
$("compare-box").addEventListener("pointermove", (e) => {
  if ($("compare-box").hasPointerCapture(e.pointerId)) slideTo(e);
});

for (const btn of document.querySelectorAll("[data-close]")) {
  btn.addEventListener("click", () => btn.closest("dialog").close());
}

// ---- start ---------------------------------------------------------------------------------------------
function showQueue(q) {
  // "running · 0 waiting" while a job runs (the bound is how many may wait, in the tooltip)
  $("queue").textContent = q.running ? `running · ${q.waiting || 0} waiting` : (q.waiting ? `${q.waiting} waiting` : "idle");
  $("queue").title = `the job running now, and the jobs waiting behind it (at most ${q.bound})`;
}

async function refreshHealth() {
  try {
    const h = await apiJson("/api/health");
    state.health = h;
    showQueue(h.queue);
    return h;
  } catch (err) {
    return null;
  }
}

async function init() {
  try {
    const h = await apiJson("/api/health");
    state.health = h;
    fillDefaults(h);
    const first = $("message").textContent;
    await loadLoras();
    await loadHistory(true);
    // clear the start-up note only: a message a user's action set meanwhile (an upload's error) stays
    if ($("message").textContent === first) message("");
    await resume();
  } catch (err) {
    message(err.message, "error");
  }
}

init();
