// p2phd edit: the page over the editor's HTTP API. No build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  info: null,       // /api/info: classes, maps, what the run can do
  state: null,      // the latest state: open map, size, version, undo depth
  point: null,      // the selected object's pixel [x, y]: edits change ids, the pixel stays
  selected: null,   // /api/select's answer for that pixel
  stroke: null,     // the brush stroke being drawn: [[x, y], ...]
  showing: 0,       // counts showSelection calls: only the newest one draws
  timer: 0,
};

// -- the API ------------------------------------------------------------------------------

// The session's token, which the server put in this page: every change carries it.
const TOKEN = document.querySelector('meta[name="p2phd-token"]').content;

async function call(method, path, body) {
  const options = { method, headers: {} };
  if (method === "POST") {
    options.body = JSON.stringify(body === undefined ? {} : body);
    options.headers["Content-Type"] = "application/json";
    options.headers["X-P2phd-Token"] = TOKEN;
  }
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function guarded(work) {
  try {
    await work();
  } catch (error) {
    say(error.message, true);
  }
}

async function edit(path, body) {
  try {
    ui.state = await call("POST", path, body);
    say("");
  } catch (error) {
    say(error.message, true); // the state is as it was; the refresh clears the brush preview
  }
  scheduleRefresh();
}

function readFile(input) {
  return new Promise((resolve, reject) => {
    const file = input.files[0];
    if (!file) return resolve(null);
    const reader = new FileReader();
    reader.onload = () => resolve({ name: file.name, data: reader.result });
    reader.onerror = () => reject(new Error(`${file.name}: cannot be read`));
    reader.readAsDataURL(file);
  });
}

// -- showing the state ----------------------------------------------------------------------

function scheduleRefresh() {
  // Edits in quick succession (a brush, clicks on swatches) give one render, not one each.
  clearTimeout(ui.timer);
  ui.timer = setTimeout(() => guarded(refresh), 120);
}

function loadImage(img, src) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error(`${src}: could not be shown`));
    img.src = src;
  });
}

async function refresh() {
  const state = ui.state;
  $("undo").disabled = !state.can_undo;
  $("redo").disabled = !state.can_redo;
  $("revert").disabled = !state.can_undo;
  showMaps(state);
  if (!state.open) {
    say("Pick a label map, or upload one.");
    return;
  }
  $("size").textContent = `${state.width}×${state.height}`;
  for (const canvas of [$("label-overlay"), $("image-overlay")]) {
    canvas.width = state.width;
    canvas.height = state.height;
  }
  $("busy").hidden = false;
  const v = state.version;
  await loadImage($("label"), `/api/label.png?v=${v}`);
  await loadImage($("image"), `/api/image.png?v=${v}`);
  $("busy").hidden = true;
  const command = await call("GET", "/api/command");
  $("command").textContent = command.command;
  for (const [kind, name] of Object.entries(command.files)) $(`dl-${kind}`).download = name;
  $("dl-inst").hidden = !("inst" in command.files);
  $("dl-style").hidden = !("style" in command.files);
  await showSelection();
  document.body.dataset.version = String(v); // everything shown is this state's
}

function showMaps(state) {
  // Every map keeps its edits for the session: the list says which hold some.
  const select = $("maps");
  select.replaceChildren();
  for (const key of state.maps) {
    const edited = (state.edited || []).includes(key);
    select.add(new Option(edited ? `${key} (edited)` : key, key));
  }
  select.disabled = state.maps.length === 0;
  if (state.open) select.value = state.open;
}

async function showSelection() {
  // A newer call (another click, another edit) makes this one stop where it is.
  const token = ++ui.showing;
  const current = () => token === ui.showing;
  if (!ui.point) {
    clearOverlays();
    $("selection").hidden = true;
    return;
  }
  const [x, y] = ui.point;
  const object = await call("GET", `/api/select?x=${x}&y=${y}`);
  if (!current()) return;
  ui.selected = object;
  $("selection").hidden = false;
  $("sel-id").textContent = object.id;
  $("sel-class").textContent = `${object.name} (${object.class})`;
  $("sel-area").textContent = `${object.area} px`;
  $("relabel-class").value = String(object.class);
  const outline = new Image();
  await loadImage(outline, `/api/outline.png?id=${object.id}&v=${ui.state.version}`);
  if (!current()) return;
  clearOverlays();
  for (const canvas of [$("label-overlay"), $("image-overlay")]) {
    canvas.getContext("2d").drawImage(outline, 0, 0);
  }
  $("styles").hidden = !ui.info.features;
  if (!ui.info.features) return;
  $("random-style").disabled = object.clusters < 2;
  if (object.clusters === 0) {
    $("swatches").replaceChildren();
    $("style-note").textContent = `${object.name} has no clusters: take its style from a photo.`;
    return;
  }
  const { swatches } = await call("GET", `/api/swatches?id=${object.id}`);
  if (!current()) return;
  $("style-note").textContent = `${object.clusters} clusters of ${object.name}:`;
  $("swatches").replaceChildren(...swatchButtons(object, swatches));
}

function swatchButtons(object, swatches) {
  return swatches.map((url, cluster) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "swatch";
    button.dataset.cluster = String(cluster);
    button.setAttribute("aria-pressed", String(object.style === cluster));
    button.title = `cluster ${cluster}`;
    const img = document.createElement("img");
    img.src = url;
    img.alt = `cluster ${cluster}`;
    const caption = document.createElement("span");
    caption.textContent = String(cluster);
    button.append(img, caption);
    button.addEventListener("click", () => edit("/api/restyle", { id: object.id, cluster }));
    return button;
  });
}

function clearOverlays() {
  for (const canvas of [$("label-overlay"), $("image-overlay")]) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
}

// -- input ----------------------------------------------------------------------------------

function tool() {
  return document.querySelector('input[name="tool"]:checked').value;
}

function mapPoint(event, stack) {
  // The pixel of the map under the pointer: the images are scaled to the pane.
  const box = stack.getBoundingClientRect();
  const x = Math.floor(((event.clientX - box.left) / box.width) * ui.state.width);
  const y = Math.floor(((event.clientY - box.top) / box.height) * ui.state.height);
  return [Math.min(Math.max(x, 0), ui.state.width - 1), Math.min(Math.max(y, 0), ui.state.height - 1)];
}

function drawStroke() {
  const radius = Number($("brush-size").value) / 2;
  for (const canvas of [$("label-overlay"), $("image-overlay")]) {
    const context = canvas.getContext("2d");
    context.fillStyle = tool() === "erase" ? "rgba(0,0,0,0.45)" : "rgba(255,255,255,0.55)";
    const [x, y] = ui.stroke[ui.stroke.length - 1];
    context.beginPath();
    context.arc(x + 0.5, y + 0.5, radius, 0, 2 * Math.PI);
    context.fill();
  }
}

function bindPointer(stack) {
  stack.addEventListener("pointerdown", (event) => {
    if (!ui.state || !ui.state.open) return;
    const point = mapPoint(event, stack);
    if (tool() === "select") {
      ui.point = point;
      guarded(showSelection);
      return;
    }
    stack.setPointerCapture(event.pointerId);
    ui.stroke = [point];
    drawStroke();
  });
  stack.addEventListener("pointermove", (event) => {
    if (!ui.stroke) return;
    ui.stroke.push(mapPoint(event, stack));
    drawStroke();
  });
  stack.addEventListener("pointerup", () => {
    if (!ui.stroke) return;
    const body = { points: ui.stroke, radius: Number($("brush-size").value) / 2 };
    ui.stroke = null;
    if (tool() === "paint") edit("/api/paint", { ...body, class: $("brush-class").value });
    else edit("/api/erase", body);
  });
}

function fillClassSelect(select) {
  for (const c of ui.info.classes) select.add(new Option(`${c.id} ${c.name}`, String(c.id)));
}

async function start() {
  ui.info = await call("GET", "/api/info");
  ui.state = ui.info;
  $("run").textContent = ui.info.run;
  showMaps(ui.info);
  fillClassSelect($("brush-class"));
  fillClassSelect($("relabel-class"));
  $("upload-inst-row").hidden = !ui.info.instances;
  for (const c of ui.info.classes) {
    const item = document.createElement("li");
    const chip = document.createElement("i");
    chip.style.background = `rgb(${c.colour.join(",")})`;
    item.append(chip, `${c.id} ${c.name}`);
    $("legend").append(item);
  }
  $("maps").addEventListener("change", () => {
    ui.point = null;
    edit("/api/open", { key: $("maps").value });
  });
  $("upload-open").addEventListener("click", () => guarded(async () => {
    const label = await readFile($("upload-label"));
    if (!label) throw new Error("choose a label PNG first");
    const inst = await readFile($("upload-inst"));
    ui.point = null;
    await edit("/api/upload", {
      label: label.data, label_name: label.name,
      inst: inst ? inst.data : null, inst_name: inst ? inst.name : "",
    });
  }));
  $("undo").addEventListener("click", () => edit("/api/undo"));
  $("redo").addEventListener("click", () => edit("/api/redo"));
  $("revert").addEventListener("click", () => edit("/api/revert"));
  $("relabel").addEventListener("click", () => {
    if (ui.selected) edit("/api/relabel", { id: ui.selected.id, class: $("relabel-class").value });
  });
  $("random-style").addEventListener("click", () => {
    if (ui.selected) edit("/api/restyle", { id: ui.selected.id, cluster: null });
  });
  $("photo").addEventListener("change", () => guarded(async () => {
    const photo = await readFile($("photo"));
    $("photo").value = "";
    if (photo && ui.selected) {
      await edit("/api/photo-style", { id: ui.selected.id, photo: photo.data, name: photo.name });
    }
  }));
  $("brush-size").addEventListener("input", () => {
    $("brush-size-value").textContent = $("brush-size").value;
  });
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.key.toLowerCase() !== "z") return;
    event.preventDefault();
    edit(event.shiftKey ? "/api/redo" : "/api/undo");
  });
  bindPointer($("label-stack"));
  bindPointer($("image-stack"));
  if (ui.state.open) await refresh();
  else say("Pick a label map, or upload one.");
}

guarded(start);
