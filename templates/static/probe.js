/* The probe (probe/): the atlas's own network run in the page on a test image or a drawing.
 *
 * Reads probe/network.json and the files it names (generator/probe.py writes them); the page's HTML
 * (templates/probe.md.j2) holds the places, this fills them. State lives in the address:
 * #test=1234&neuron=42. For scripts and tests: window.atlasProbe.forward(pixels) -> {hidden, output,
 * layers} (hidden: the layer the outputs read; layers: every hidden layer's activations, first first),
 * .state() -> {pixels, hidden, output, layers, predicted, test, neuron}, .prepare(strokes) -> the prepared
 * drawing (the same algorithm as generator/probe.py's prepare), .strokes() -> what was drawn (points in
 * [0, 1] of the drawing area), .ready (a promise).
 */
(() => {
  "use strict";
  const root = document.querySelector("[data-probe]");
  if (!root) return;
  const $ = (selector) => root.querySelector(selector);
  const $$ = (selector) => [...root.querySelectorAll(selector)];
  const manifestUrl = new URL(root.dataset.manifest, location.href);
  const PUSHERS = 5; // neurons listed up and down

  // ---- activation functions, by the names network.json gives -------------------------------------
  const ACTIVATIONS = {
    sigmoid: { f: (z) => z.map((v) => 1 / (1 + Math.exp(-v))), d: (a) => a * (1 - a) },
    tanh: { f: (z) => z.map((v) => Math.tanh(v)), d: (a) => 1 - a * a },
    relu: { f: (z) => z.map((v) => (v > 0 ? v : 0)), d: (a) => (a > 0 ? 1 : 0) },
    softmax: {
      f: (z) => {
        const top = Math.max(...z);
        const e = z.map((v) => Math.exp(v - top));
        const sum = e.reduce((s, v) => s + v, 0);
        return e.map((v) => v / sum);
      },
      d: null, // only as an output
    },
  };
  function activation(name, hidden) {
    const act = ACTIVATIONS[name];
    if (!act || (hidden && !act.d)) throw new Error(`network.json: unknown ${hidden ? "hidden" : "output"} activation '${name}'`);
    return act;
  }

  // ---- data ---------------------------------------------------------------------------------------
  async function fetchData(name, kind) {
    const response = await fetch(new URL(name, manifestUrl));
    if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
    return kind === "json" ? response.json() : response.arrayBuffer();
  }
  function float32s(buffer) {
    const view = new DataView(buffer);
    const out = new Float64Array(buffer.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  function integers(buffer, dtype) {
    return dtype === "uint8" ? new Uint8Array(buffer) : Uint16Array.from({ length: buffer.byteLength / 2 },
      (_, i) => new DataView(buffer).getUint16(2 * i, true));
  }
  function lookup(hex) {
    const table = new Uint8Array(hex.length / 2);
    for (let i = 0; i < table.length; i++) table[i] = parseInt(hex.substr(2 * i, 2), 16);
    return table;
  }

  let net = null; // {D, H, K, L, layers, W1, b1, W2, b2, bL, hidden, output, manifest, maps}
  async function load() {
    const m = await fetchData(manifestUrl.pathname.split("/").pop(), "json");
    // W1, b1, ..., W{L+1}, b{L+1}: one hidden layer (W1, b1, W2, b2) or more, as the manifest lists them.
    const names = Object.keys(m.parameters);
    const arrays = await Promise.all(names.map(async (name) => float32s(await fetchData(m.parameters[name].file))));
    const p = Object.fromEntries(names.map((name, i) => [name, arrays[i]]));
    const sizes = m.sizes, L = sizes.length - 2;
    const layers = sizes.slice(1).map((n, l) => ({ W: p[`W${l + 1}`], b: p[`b${l + 1}`], nIn: sizes[l], nOut: n }));
    // H and W2 are the layer the outputs read (the only one for one hidden layer); W1 the pixels' layer.
    net = { D: sizes[0], H: sizes[L], K: sizes[L + 1], L, layers, W1: p.W1, b1: p.b1,
            W2: p[`W${L + 1}`], b2: p[`b${L + 1}`], bL: p[`b${L}`], manifest: m,
            hidden: activation(m.hidden_activation, true), output: activation(m.output_activation, false),
            maps: Object.fromEntries(Object.entries(m.colour_maps).map(([k, v]) => [k, lookup(v)])) };
  }

  // ---- the forward pass ---------------------------------------------------------------------------
  function run(x) {
    const { D, H, K, L, layers, W2, b2 } = net;
    if (x.length !== D) throw new Error(`forward: expected ${D} pixels, got ${x.length}`);
    const zs = [], as = [];
    let a = x;
    for (let l = 0; l < L; l++) {
      const { W, b, nIn, nOut } = layers[l];
      const on = [];
      for (let i = 0; i < nIn; i++) if (a[i] !== 0) on.push(i); // most pixels are 0 and add nothing
      const z = new Float64Array(nOut);
      for (let j = 0; j < nOut; j++) {
        let s = 0;
        const row = j * nIn;
        for (const i of on) s += W[row + i] * a[i];
        z[j] = s + b[j];
      }
      zs.push(z);
      a = net.hidden.f(z);
      as.push(a);
    }
    const a1 = as[L - 1];
    const z2 = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      let s = 0;
      const row = k * H;
      for (let j = 0; j < H; j++) s += W2[row + j] * a1[j];
      z2[k] = s + b2[k];
    }
    return { z1: zs[L - 1], a1, zs, as, z2, a2: net.output.f(z2) };
  }
  // The gradient with respect to the pixels of a quantity s whose gradient with respect to the last hidden
  // layer's pre-activations is `top` (H,): backpropagated through every hidden layer, then W1.
  function toInput(out, top) {
    let g = top;
    for (let l = net.L - 1; l >= 1; l--) {
      const { W, nIn, nOut } = net.layers[l];
      const below = new Float64Array(nIn);
      for (let h = 0; h < nOut; h++) {
        if (g[h] === 0) continue;
        for (let i = 0; i < nIn; i++) below[i] += g[h] * W[h * nIn + i];
      }
      for (let i = 0; i < nIn; i++) below[i] *= net.hidden.d(out.as[l - 1][i], out.zs[l - 1][i]);
      g = below;
    }
    const { W, nIn: D, nOut: H1 } = net.layers[0];
    const x = new Float64Array(D);
    for (let h = 0; h < H1; h++) {
      if (g[h] === 0) continue;
      for (let i = 0; i < D; i++) x[i] += g[h] * W[h * D + i];
    }
    return x;
  }
  function argmax(values, skip = -1) {
    let best = -1;
    for (let i = 0; i < values.length; i++) if (i !== skip && (best < 0 || values[i] > values[best])) best = i;
    return best;
  }

  // ---- the drawing's preparation (generator/probe.py's prepare, operation for operation) -----------
  function rasterise(segments, rows, cols, pen, s) {
    const W = cols * s, Hs = rows * s, r2 = pen * pen;
    const inked = new Uint8Array(W * Hs);
    for (const [x0, y0, x1, y1] of segments) {
      const dx = x1 - x0, dy = y1 - y0, length2 = dx * dx + dy * dy;
      // Only samples near the segment can be within the pen: a conservative box around it.
      const kx0 = Math.max(0, Math.floor((Math.min(x0, x1) - pen) * s - 1)), kx1 = Math.min(W - 1, Math.ceil((Math.max(x0, x1) + pen) * s + 1));
      const ky0 = Math.max(0, Math.floor((Math.min(y0, y1) - pen) * s - 1)), ky1 = Math.min(Hs - 1, Math.ceil((Math.max(y0, y1) + pen) * s + 1));
      for (let ky = ky0; ky <= ky1; ky++) {
        const py = (ky + 0.5) / s;
        for (let kx = kx0; kx <= kx1; kx++) {
          const px = (kx + 0.5) / s;
          let t = 0;
          if (length2 > 0) {
            t = ((px - x0) * dx + (py - y0) * dy) / length2;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
          }
          const ex = px - (x0 + t * dx), ey = py - (y0 + t * dy);
          if (ex * ex + ey * ey <= r2) inked[ky * W + kx] = 1;
        }
      }
    }
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        let n = 0;
        for (let a = 0; a < s; a++) for (let b = 0; b < s; b++) n += inked[(r * s + a) * W + c * s + b];
        out[r * cols + c] = n / (s * s);
      }
    return out;
  }
  function blur(image, rows, cols) {
    const at = (img, r, c) => (r < 0 || r >= rows || c < 0 || c >= cols ? 0 : img[r * cols + c]);
    const across = new Float64Array(rows * cols), out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) across[r * cols + c] = (at(image, r, c - 1) + 2 * at(image, r, c) + at(image, r, c + 1)) * 0.25;
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) out[r * cols + c] = (at(across, r - 1, c) + 2 * at(across, r, c) + at(across, r + 1, c)) * 0.25;
    return out;
  }
  function prepare(strokes, rows, cols, d) {
    const points = strokes.flat();
    if (!points.length) return new Float64Array(rows * cols);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [x, y] of points) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    const extent = Math.max(x1 - x0, y1 - y0, d.min_extent);
    const side = d.box * Math.min(rows, cols) - 2 * d.pen;
    const k = side / extent;
    const ox = cols / 2 - (x0 + x1) / 2 * k;
    const oy = rows / 2 - (y0 + y1) / 2 * k;
    const draw = (shiftX, shiftY) => {
      const segments = [];
      for (const stroke of strokes) {
        let pts = stroke.map(([x, y]) => [x * k + ox + shiftX, y * k + oy + shiftY]);
        if (pts.length === 1) pts = [pts[0], pts[0]];
        for (let i = 1; i < pts.length; i++) segments.push([pts[i - 1][0], pts[i - 1][1], pts[i][0], pts[i][1]]);
      }
      const image = blur(rasterise(segments, rows, cols, d.pen, d.supersample), rows, cols);
      let top = 0;
      for (const v of image) top = Math.max(top, v);
      return top > 0 ? image.map((v) => v / top) : image;
    };
    const first = draw(0, 0);
    let total = 0, mx = 0, my = 0;
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const v = first[r * cols + c];
        total += v; mx += v * (c + 0.5); my += v * (r + 0.5);
      }
    const [cx, cy] = total > 0 ? [mx / total, my / total] : [cols / 2, rows / 2];
    return draw(cols / 2 - cx, rows / 2 - cy);
  }

  // ---- pictures, in the site's colours (figures.py) -----------------------------------------------
  function paint(canvas, values, colour) {
    const [rows, cols] = net.manifest.image_shape;
    canvas.width = cols; canvas.height = rows;
    const context = canvas.getContext("2d");
    const image = context.createImageData(cols, rows);
    for (let i = 0; i < rows * cols; i++) {
      const [r, g, b] = colour(values[i]);
      image.data.set([r, g, b, 255], 4 * i);
    }
    context.putImageData(image, 0, 0);
  }
  // matplotlib's lookup of v in [0, 1]: entry min(255, floor(256 v)).
  function colourOf(table, v) {
    const i = Math.min(255, Math.floor(v * 256)) * 3;
    return [table[i], table[i + 1], table[i + 2]];
  }
  const clip = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);
  const ink = (v) => colourOf(net.maps.ink, clip(v, 0, 1));
  const activationColour = (v) => colourOf(net.maps.activation, clip(v, 0, 1));
  function diverging(values) {
    let vmax = 0;
    for (const v of values) vmax = Math.max(vmax, Math.abs(v));
    const scale = vmax > 0 ? vmax : 1;
    return [vmax, (v) => colourOf(net.maps.diverging, 0.5 + 0.5 * clip(v / scale, -1, 1))];
  }
  const hex = ([r, g, b]) => "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
  // The site's formats (render.py): 0.123, and +0.123 / −0.123 with a true minus sign.
  const fixed = (v, digits = 3) => v.toFixed(digits);
  const signed = (v, digits = 3) => (v < 0 || Object.is(v, -0) ? "−" : "+") + Math.abs(v).toFixed(digits);
  // A map's scale or total: three decimals, or two significant digits when it is smaller than that shows.
  const small = (v) => (v !== 0 && Math.abs(v) < 0.0005
    ? (v < 0 ? "−" : "+") + Math.abs(v).toExponential(1).replace("-", "−") : signed(v));
  const setText = (selector, text) => { for (const el of root.querySelectorAll(selector)) el.textContent = text; };

  // ---- test images --------------------------------------------------------------------------------
  const sheets = new Map(); // sheet index -> promise of ImageData
  function sheet(s) {
    if (!sheets.has(s)) {
      sheets.set(s, (async () => {
        const image = new Image();
        image.src = new URL(net.manifest.test.sheets[s], manifestUrl).href;
        await image.decode();
        const canvas = document.createElement("canvas");
        canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
        const context = canvas.getContext("2d", { willReadFrequently: true });
        context.drawImage(image, 0, 0);
        return context.getImageData(0, 0, canvas.width, canvas.height);
      })());
    }
    return sheets.get(s);
  }
  async function testImage(n) {
    const t = net.manifest.test, [rows, cols] = net.manifest.image_shape;
    const data = await sheet(Math.floor(n / t.per_sheet));
    const k = n % t.per_sheet, top = Math.floor(k / t.columns) * rows, left = (k % t.columns) * cols;
    const pixels = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) pixels[r * cols + c] = data.data[4 * ((top + r) * data.width + left + c)] / 255;
    return pixels;
  }
  // Labels, answers and the test images' indices (#test=N is the index in the source files, as on the
  // pages: MNIST's own; a subset such as tiny/'s lists them, else image n is #test=n), fetched when needed.
  let tables = null; // promise of {labels, predicted, ids, position(id) -> n or undefined}
  async function testTables() {
    if (!tables) {
      const t = net.manifest.test;
      tables = (async () => {
        const [labels, predicted] = await Promise.all([t.labels, t.predicted].map(
          async (f) => integers(await fetchData(f.file), f.dtype)));
        let ids = Array.from({ length: t.count }, (_, n) => n), position = (id) => (id < t.count ? id : undefined);
        if (t.ids) {
          const view = new DataView(await fetchData(t.ids.file));
          ids = Array.from({ length: t.count }, (_, n) => view.getUint32(4 * n, true));
          const where = new Map(ids.map((id, n) => [id, n]));
          position = (id) => where.get(id);
        }
        return { labels, predicted, ids, position };
      })();
    }
    return tables;
  }

  // ---- state and drawing the page -----------------------------------------------------------------
  const current = { pixels: null, test: null, neuron: null, result: null, label: null };
  let strokes = [];

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const number = (key, limit) => {
      if (!params.has(key)) return null;
      const v = Number(params.get(key));
      return Number.isInteger(v) && v >= 0 && v < limit ? v : undefined;
    };
    return { test: number("test", Infinity), neuron: number("neuron", net.H) };
  }
  function writeHash(test, neuron, push) {
    const parts = [];
    if (test !== null) parts.push(`test=${test}`);
    if (neuron !== null) parts.push(`neuron=${neuron}`);
    const hash = parts.length ? "#" + parts.join("&") : location.pathname + location.search;
    if (push) location.hash = parts.join("&");
    else history.replaceState(null, "", parts.length ? hash : location.pathname + location.search);
  }

  async function follow() {
    const want = readHash();
    const message = $("[data-probe-message]");
    message.textContent = "";
    const { labels, position } = await testTables();
    let test = want.test ?? (current.pixels === null ? Number(root.dataset.defaultTest) : null);
    if (test !== null && position(test) === undefined) {
      want.test = undefined;
      test = current.pixels === null ? Number(root.dataset.defaultTest) : null;
    }
    if (want.test === undefined || want.neuron === undefined) {
      message.textContent = `Not in this atlas: ${location.hash}. Test images are those of its test set, by the ` +
        `number its pages show; neurons are #neuron=0 to ${net.H - 1}.`;
    }
    current.neuron = want.neuron ?? null;
    if (test !== null && test !== current.test) {
      const n = position(test);
      const pixels = await testImage(n);
      strokes = [];
      clearDrawing();
      current.pixels = pixels; current.test = test; current.label = labels[n];
    }
    $("[data-probe-index]").value = current.test ?? "";
    show();
  }

  function show() {
    const { D, H, K, L, W1, bL, W2, b2 } = net;
    const x = current.pixels;
    const out = (current.result = run(x));
    const { z1, a1, z2, a2 } = out;
    const predicted = argmax(z2), runner = K > 1 ? argmax(z2, predicted) : -1;
    const names = net.manifest.class_names;
    root.dataset.predicted = predicted;
    // Input and its caption.
    paint($("[data-probe-input]"), x, ink);
    setText("[data-probe-source]", current.test !== null
      ? `test image #${current.test}, labelled ${names[current.label]}` : "your drawing");
    setText("[data-probe-predicted]", names[predicted]);
    setText("[data-probe-confidence]", fixed(a2[predicted]));
    // The hidden layer.
    for (const cell of $$("[data-probe-unit]")) {
      const j = Number(cell.dataset.probeUnit);
      cell.style.background = hex(activationColour(a1[j]));
      cell.title = `${cell.dataset.name}: ${fixed(a1[j])}`;
      cell.dataset.activation = a1[j];
      cell.classList.toggle("probe-selected", j === current.neuron);
    }
    // A deeper network's other hidden layers.
    for (const cell of $$("[data-probe-layer]")) {
      const l = Number(cell.dataset.probeLayer), j = Number(cell.dataset.probeCell);
      const v = out.as[l - 1][j];
      cell.style.background = hex(activationColour(v));
      cell.title = `${cell.dataset.name}: ${fixed(v)}`;
      cell.dataset.activation = v;
    }
    // The outputs.
    for (const bar of $$("[data-probe-output]")) {
      const k = Number(bar.dataset.probeOutput);
      bar.querySelector(".probe-fill").style.width = `${100 * clip(a2[k], 0, 1)}%`;
      bar.querySelector("output").textContent = fixed(a2[k]);
      bar.classList.toggle("probe-winner", k === predicted);
    }
    // Why this answer: W2[c, j] a_j, and against the runner-up.
    const push = Array.from(a1, (a, j) => W2[predicted * H + j] * a);
    const margin = Array.from(a1, (a, j) => (runner < 0 ? 0 : (W2[predicted * H + j] - W2[runner * H + j]) * a));
    const order = [...push.keys()].sort((i, j) => push[j] - push[i] || i - j);
    const up = order.filter((j) => push[j] > 0).slice(0, PUSHERS);
    const down = order.filter((j) => push[j] < 0).reverse().slice(0, PUSHERS);
    setText("[data-probe-runner]", runner < 0 ? "–" : names[runner]);
    setText("[data-probe-logit]", signed(z2[predicted]));
    setText("[data-probe-bias2]", signed(b2[predicted]));
    setText("[data-probe-margin]", runner < 0 ? "–" : signed(z2[predicted] - z2[runner]));
    for (const [selector, list] of [["[data-probe-up]", up], ["[data-probe-down]", down]]) {
      const body = $(selector);
      body.replaceChildren(...list.map((j) => pusherRow(j, a1[j], push[j], margin[j], runner >= 0)));
      if (!list.length) body.innerHTML = `<tr><td colspan="6">none</td></tr>`;
    }
    // One neuron: weights x input, its sum, bias and activation. Below the first hidden layer the map is
    // the gradient of its pre-activation with respect to the pixels at this input.
    const j = current.neuron ?? up[0] ?? order[0];
    const w = L === 1 ? W1.subarray(j * D, (j + 1) * D) : toInput(out, Float64Array.from({ length: H }, (_, h) => +(h === j)));
    const product = Array.from(w, (v, i) => v * x[i]);
    const cell = $(`[data-probe-unit="${j}"]`);
    const [wmax, wColour] = diverging(w), [pmax, pColour] = diverging(product);
    paint($("[data-probe-weights]"), w, wColour);
    paint($("[data-probe-product]"), product, pColour);
    paint($("[data-probe-input-copy]"), x, ink);
    let sum = 0;
    for (const v of product) sum += v;
    setText("[data-probe-neuron-name]", cell.dataset.name);
    for (const a of $$("[data-probe-neuron-link]")) a.href = cell.href;
    $("[data-probe-neuron]").value = j;
    setText("[data-probe-wmax]", small(wmax)); setText("[data-probe-wmin]", small(-wmax));
    setText("[data-probe-pmax]", small(pmax)); setText("[data-probe-pmin]", small(-pmax));
    setText("[data-probe-sum]", signed(sum));
    setText("[data-probe-bias]", signed(bL[j]));
    setText("[data-probe-z]", signed(z1[j]));
    setText("[data-probe-activation]", fixed(a1[j]));
    setText("[data-probe-hidden-activation]", net.manifest.hidden_activation);
    setText("[data-probe-out-weight]", signed(W2[predicted * H + j]));
    setText("[data-probe-push]", signed(push[j]));
    // Gradient x input of the predicted output's logit: W1^T (f'(z1) * W2[c]) times the pixels (for one
    // hidden layer; backpropagated through every layer for more).
    const g = toInput(out, Float64Array.from({ length: H }, (_, h) => net.hidden.d(a1[h], z1[h]) * W2[predicted * H + h]));
    const gx = Array.from(g, (v, i) => v * x[i]);
    const [gmax, gColour] = diverging(gx);
    paint($("[data-probe-gradient]"), gx, gColour);
    let gsum = 0;
    for (const v of gx) gsum += v;
    setText("[data-probe-gmax]", small(gmax)); setText("[data-probe-gmin]", small(-gmax));
    setText("[data-probe-gsum]", small(gsum));
    root.dataset.ready = "true";
  }

  function pusherRow(j, a, push, margin, hasRunner) {
    const cell = $(`[data-probe-unit="${j}"]`);
    const row = document.createElement("tr");
    row.dataset.probePusher = j;
    const thumb = document.createElement("a");
    thumb.href = cell.href;
    const img = document.createElement("img");
    Object.assign(img, { src: cell.dataset.weights, width: 40, height: 40, alt: `Weight map of ${cell.dataset.name}` });
    thumb.append(img);
    const link = document.createElement("a");
    link.href = cell.href; link.textContent = cell.dataset.id;
    const inspect = document.createElement("button");
    inspect.type = "button"; inspect.textContent = "inspect"; inspect.className = "probe-button";
    inspect.addEventListener("click", () => writeHash(current.test, j, true));
    const cells = [thumb, link, fixed(a), signed(push), hasRunner ? signed(margin) : "–", inspect];
    row.append(...cells.map((content) => {
      const td = document.createElement("td");
      td.append(content);
      return td;
    }));
    return row;
  }

  // ---- drawing --------------------------------------------------------------------------------------
  const pad = $("[data-probe-draw]");
  const padContext = pad.getContext("2d");
  function clearDrawing() {
    padContext.fillStyle = "#fff";
    padContext.fillRect(0, 0, pad.width, pad.height);
  }
  function padStroke(stroke) {
    padContext.strokeStyle = "#000"; padContext.fillStyle = "#000";
    padContext.lineWidth = pad.width / 14; padContext.lineCap = "round"; padContext.lineJoin = "round";
    padContext.beginPath();
    stroke.forEach(([x, y], i) => (i ? padContext.lineTo : padContext.moveTo).call(padContext, x * pad.width, y * pad.width));
    if (stroke.length === 1) padContext.lineTo(stroke[0][0] * pad.width + 0.01, stroke[0][1] * pad.width);
    padContext.stroke();
  }
  let drawing = false, pending = false;
  function update() {
    pending = false;
    const [rows, cols] = net.manifest.image_shape;
    current.pixels = prepare(strokes, rows, cols, net.manifest.drawing);
    show();
  }
  function point(event) {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.width];
  }
  pad.addEventListener("pointerdown", (event) => {
    if (!net) return;
    event.preventDefault();
    try {
      pad.setPointerCapture(event.pointerId); // keep the stroke when the finger or mouse leaves the pad
    } catch (error) {
      // a pointer the browser no longer tracks: draw without capture
    }
    if (current.test !== null) { // a drawing replaces the test image
      current.test = null;
      strokes = [];
      clearDrawing();
      writeHash(null, current.neuron, false);
      $("[data-probe-index]").value = "";
    }
    drawing = true;
    strokes.push([point(event)]);
    padStroke(strokes[strokes.length - 1]);
    if (!pending) { pending = true; requestAnimationFrame(update); }
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    const stroke = strokes[strokes.length - 1];
    for (const e of events.length ? events : [event]) stroke.push(point(e));
    padStroke(stroke);
    if (!pending) { pending = true; requestAnimationFrame(update); }
  });
  for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { drawing = false; });

  // ---- controls -------------------------------------------------------------------------------------
  function pick(candidates) {
    return candidates.length ? candidates[Math.floor(Math.random() * candidates.length)] : null;
  }
  $("[data-probe-form]").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("[data-probe-index]").value;
    if (value !== "") writeHash(Number(value), current.neuron, true);
  });
  for (const button of $$("[data-probe-random]")) {
    button.addEventListener("click", async () => {
      const { labels, ids } = await testTables();
      const k = Number(button.dataset.probeRandom);
      const n = pick([...labels.keys()].filter((i) => labels[i] === k));
      if (n !== null) writeHash(ids[n], current.neuron, true);
    });
  }
  $("[data-probe-mistake]").addEventListener("click", async () => {
    const { labels, predicted, ids } = await testTables();
    const n = pick([...labels.keys()].filter((i) => labels[i] !== predicted[i]));
    if (n === null) setText("[data-probe-message]", "The network gets every test image right.");
    else writeHash(ids[n], current.neuron, true);
  });
  $("[data-probe-clear]").addEventListener("click", () => {
    strokes = [];
    clearDrawing();
    if (current.test === null && net) update();
  });
  $("[data-probe-neuron-form]").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("[data-probe-neuron]").value;
    if (value !== "") writeHash(current.test, Number(value), true);
  });

  // ---- for scripts ----------------------------------------------------------------------------------
  // A page opened from the file system may not fetch files (the rest of the site works there): say so.
  const SERVED_ONLY = "The probe reads the network from files, which a browser lets a page do only when the site " +
    "is served: run make serve (or python3 -m http.server --directory site) and open probe/ there.";
  const ready = (async () => {
    clearDrawing();
    if (location.protocol === "file:") throw new Error(SERVED_ONLY);
    await load();
    window.addEventListener("hashchange", () => follow().catch(fail));
    await follow();
  })();
  function fail(error) {
    if (error.message === SERVED_ONLY) { setText("[data-probe-message]", SERVED_ONLY); return; }
    setText("[data-probe-message]", `The probe could not run: ${error.message}`);
    console.error(error);
  }
  ready.catch(fail);
  window.atlasProbe = {
    ready,
    forward(pixels) {
      const { a1, a2, as } = run(Float64Array.from(pixels));
      return { hidden: Array.from(a1), output: Array.from(a2), layers: as.map((a) => Array.from(a)) };
    },
    state() {
      const { a1, a2, z2, as } = current.result;
      return { pixels: Array.from(current.pixels), hidden: Array.from(a1), output: Array.from(a2),
               layers: as.map((a) => Array.from(a)),
               predicted: argmax(z2), test: current.test, neuron: current.neuron };
    },
    strokes() {
      return strokes.map((stroke) => stroke.map(([x, y]) => [x, y]));
    },
    prepare(strokeList) {
      const [rows, cols] = net.manifest.image_shape;
      return Array.from(prepare(strokeList, rows, cols, net.manifest.drawing));
    },
  };
})();
