// digitnet serve: the page draws, the server predicts.
//
// Strokes are kept as lists of points and the canvas is redrawn from them,
// so Undo is exact.  After each stroke the canvas goes to POST /api/predict
// as a PNG; the answer (the same as `digitnet predict --json`, plus the 28x28
// "input" the network read) fills the chart and the preview.  No prediction
// is computed here.  window.digitnet keeps the last PNG sent and its answer,
// and the milliseconds from each stroke's end to its answer on screen, for
// the browser test, benchmarks/serve_latency.py and anyone curious.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const MAX_UPLOAD = 4 * 1024 * 1024;
  const state = {
    strokes: [], current: null, seq: 0,
    classes: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], output: "sigmoid",
  };
  const exposed = window.digitnet = {
    lastPng: null, lastResult: null, sent: 0, shown: 0, pointer: null,
    timings: [],  // {total, server}: ms from a stroke's end to its answer painted; the request
  };

  // ---- drawing ---------------------------------------------------------

  function render() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.strokeStyle = ctx.fillStyle = "#111";
    ctx.lineWidth = pad.width / 12;      // about MNIST's 2-3 px once a digit is scaled to 20
    ctx.lineCap = ctx.lineJoin = "round";
    for (const { points } of state.strokes) {
      if (points.length === 1) {
        ctx.beginPath();
        ctx.arc(points[0][0], points[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      ctx.moveTo(points[0][0], points[0][1]);
      for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
      ctx.stroke();
    }
    $("undo").disabled = $("clear").disabled = state.strokes.length === 0;
  }

  function point(e) {
    const box = pad.getBoundingClientRect();
    return [(e.clientX - box.left) * pad.width / box.width,
            (e.clientY - box.top) * pad.height / box.height];
  }

  pad.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    if (state.current) return;                 // a second finger: ignore it
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    exposed.pointer = e.pointerType;
    state.current = { id: e.pointerId, points: [point(e)] };
    state.strokes.push(state.current);
    render();
  });

  pad.addEventListener("pointermove", (e) => {
    if (!state.current || e.pointerId !== state.current.id) return;
    const events = (e.getCoalescedEvents && e.getCoalescedEvents().length)
      ? e.getCoalescedEvents() : [e];
    for (const ev of events) state.current.points.push(point(ev));
    render();
  });

  function endStroke(e) {
    if (!state.current || e.pointerId !== state.current.id) return;
    state.current = null;
    predictDrawing(e.timeStamp);
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  function undo() {
    if (state.current || !state.strokes.length) return;
    state.strokes.pop();
    render();
    predictDrawing();
  }

  function clear() {
    state.strokes = [];
    state.current = null;
    state.seq += 1;                  // an answer still on its way is now stale
    exposed.lastPng = exposed.lastResult = null;
    render();
    resetAnswer();
  }

  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", clear);
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); }
    else if (e.key === "Escape") clear();
  });

  // The drawing is sent at half the pad's size: the network reads 20x20
  // pixels of it, and the server's work grows with the pixels (16 ms for
  // 560x560, 5 ms for 280x280).  toDataURL, not toBlob: Chromium runs
  // toBlob's callback about a second late on many strokes.
  const half = document.createElement("canvas");
  half.width = pad.width / 2;
  half.height = pad.height / 2;
  const halfCtx = half.getContext("2d");
  halfCtx.imageSmoothingQuality = "high";

  function predictDrawing(since = performance.now()) {
    if (!state.strokes.length) { clear(); return; }
    const seq = ++state.seq;
    exposed.sent += 1;
    halfCtx.drawImage(pad, 0, 0, half.width, half.height);
    const url = half.toDataURL("image/png");
    exposed.lastPng = url;
    const bytes = Uint8Array.from(atob(url.slice(url.indexOf(",") + 1)), (c) => c.charCodeAt(0));
    ask(bytes, "image/png", "your drawing", seq, since);
  }

  // ---- asking the server -----------------------------------------------

  async function ask(body, type, source, seq, since = null) {
    setStatus("thinking…", "busy");
    let answer, asked;
    try {
      asked = performance.now();
      const res = await fetch("api/predict", { method: "POST", headers: { "Content-Type": type }, body });
      answer = await res.json();
      if (!res.ok) throw new Error(answer.error || `HTTP ${res.status}`);
    } catch (err) {
      if (seq !== state.seq) return;
      resetAnswer();
      setStatus(err instanceof TypeError ? "the server did not answer (is it still running?)" : err.message, "error");
      exposed.shown = exposed.sent;
      return;
    }
    if (seq !== state.seq) return;             // a newer picture was sent since
    const server = performance.now() - asked;
    exposed.lastResult = answer;
    showAnswer(answer.digit, answer.outputs, source);
    drawPixels($("input"), answer.input);
    exposed.shown = exposed.sent;
    if (since !== null) {  // painted at the next frame
      requestAnimationFrame(() => exposed.timings.push({ total: performance.now() - since, server }));
    }
  }

  // ---- showing answers -------------------------------------------------

  const bars = $("bars");
  function buildBars() {
    bars.textContent = "";
    state.classes.forEach((name, i) => {
      const li = document.createElement("li");
      li.dataset.index = i;
      li.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
      li.querySelector(".name").textContent = name;
      bars.append(li);
    });
    bars.classList.toggle("long", state.classes.some((c) => c.length > 2));
  }

  function showAnswer(digit, outputs, source) {
    const word = state.output === "softmax" ? "probability" : "output";
    $("winner").textContent = state.classes[digit];
    $("winner").classList.toggle("long", state.classes[digit].length > 2);
    $("winner").dataset.digit = digit;
    $("confidence").textContent = `${word} ${outputs[digit].toFixed(3)}`;
    [...bars.children].forEach((li, i) => {
      li.classList.toggle("top", i === digit);
      li.style.setProperty("--v", Math.max(0, Math.min(1, outputs[i])));  // the bar's length
      li.querySelector(".value").textContent = outputs[i].toFixed(3);
    });
    $("source").textContent = source ? `from ${source}` : "";
    setStatus("", "");
  }

  function resetAnswer() {
    $("winner").textContent = "?";
    $("winner").classList.remove("long");
    delete $("winner").dataset.digit;
    $("confidence").textContent = "write a digit to see";
    [...bars.children].forEach((li) => {
      li.classList.remove("top");
      li.style.setProperty("--v", 0);
      li.querySelector(".value").textContent = "";
    });
    drawPixels($("input"), null);
    $("source").textContent = "";
    setStatus("", "");
  }

  function drawPixels(canvas, rows) {
    const c = canvas.getContext("2d");
    const img = c.createImageData(28, 28);
    for (let i = 0; i < 28 * 28; i++) {
      const v = rows ? Math.round(255 * Math.max(0, Math.min(1, rows[Math.floor(i / 28)][i % 28]))) : 0;
      img.data.set([v, v, v, 255], 4 * i);
    }
    c.putImageData(img, 0, 0);
    canvas.classList.toggle("empty", !rows);
  }

  function setStatus(text, kind) {
    const s = $("status");
    s.textContent = text;
    s.className = `status ${kind}`;
  }

  // ---- photos and scans ------------------------------------------------

  function upload(file) {
    if (!file) return;
    if (!["image/png", "image/jpeg"].includes(file.type)) {
      setStatus(`${file.name}: only PNG or JPEG pictures`, "error");
      return;
    }
    if (file.size > MAX_UPLOAD) {
      setStatus(`${file.name}: over 4 MB; send a smaller picture`, "error");
      return;
    }
    const thumb = $("thumb");
    if (thumb.src) URL.revokeObjectURL(thumb.src);
    thumb.src = URL.createObjectURL(file);
    thumb.hidden = false;
    ask(file, file.type, file.name, ++state.seq);
  }

  const drop = $("drop");
  $("file").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload(e.dataTransfer.files[0]);
  });
  // A file dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  // ---- the test set ------------------------------------------------------

  async function getJSON(url) {
    const res = await fetch(url);
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    return body;
  }

  async function showSamples() {
    const status = $("test-status");
    status.textContent = "";
    try {
      const [wrong, right] = await Promise.all([getJSON("api/sample?wrong=1"), getJSON("api/sample?wrong=0")]);
      for (const [id, s] of [["sample-wrong", wrong], ["sample-right", right]]) {
        const el = $(id);
        drawPixels(el.querySelector("canvas"), s.pixels);
        const p = s.prediction;
        el.querySelector(".what").innerHTML = "<span></span><span></span>";
        el.querySelector(".what").firstChild.textContent = `#${s.index}: it is ${s.label_name}`;
        el.querySelector(".what").lastChild.textContent = `it read ${p.label} (${p.outputs[p.digit].toFixed(2)})`;
        el.onclick = () => {
          state.seq += 1;
          showAnswer(p.digit, p.outputs, `test digit #${s.index} (it is ${s.label_name})`);
          drawPixels($("input"), s.pixels);
        };
        el.hidden = false;
      }
    } catch (err) {
      status.textContent = err.message;
      status.className = "status error";
    }
  }
  $("sample").addEventListener("click", showSamples);

  // ---- the model ---------------------------------------------------------

  async function loadModel() {
    const dl = $("model");
    try {
      const m = await getJSON("api/model");
      state.classes = m.classes;
      state.output = m.output;
      buildBars();
      if (m.dataset === "fashion-mnist") $("draw-title").textContent = "Draw a piece of clothing";
      const datasets = { "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST" };
      const rows = [["model", m.description], ["file", m.name.split(/[\\/]/).pop()],
                    ["dataset", datasets[m.dataset] || m.dataset],
                    ["output", m.output === "softmax" ? "softmax (probabilities)" : "sigmoid"]];
      rows.push(["test accuracy", m.test_accuracy === null ? "unknown (no test set)"
        : `${(100 * m.test_accuracy).toFixed(2)}%`]);
      dl.textContent = "";
      for (const [k, v] of rows) {
        const div = document.createElement("div");
        div.innerHTML = "<dt></dt><dd></dd>";
        div.firstChild.textContent = k;
        div.lastChild.textContent = v;
        if (k === "file") div.title = m.name;
        if (k === "test accuracy" && m.test_error) div.title = m.test_error;
        dl.append(div);
      }
      if (m.test_accuracy === null) {
        $("sample").disabled = true;
        $("test-status").textContent = m.test_error;
      }
      dl.dataset.ready = "1";
    } catch (err) {
      $("model-name").textContent = `the server did not answer: ${err.message}`;
    }
  }

  buildBars();
  render();
  resetAnswer();
  loadModel();
})();
