// The before/after frame. Both sides live in "world" coordinates (output pixels) under one shared transform, so zoom
// and pan always keep them aligned; the divider is in frame coordinates and only clips the result layer.

const MAX_ZOOM = 16;
const KEY_PAN = 40;

export function createCompare(el) {
  const { viewer, beforeWorld, afterWorld, afterLayer, beforeImg, afterImg, previewBox, previewImg, divider } = el;
  const view = { width: 0, height: 0, scale: 1, x: 0, y: 0, fitted: true, split: 50 };
  const pointers = new Map();
  let gesture = null;
  let onChange = () => {};

  const dpr = () => window.devicePixelRatio || 1;
  const frame = () => ({ w: viewer.clientWidth, h: viewer.clientHeight });
  const fitScale = () => {
    const { w, h } = frame();
    return view.width ? Math.min(w / view.width, h / view.height) : 1;
  };
  const minScale = () => Math.min(fitScale(), 1 / dpr()) / 2;

  function apply() {
    clampPan();
    const transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    beforeWorld.style.transform = transform;
    afterWorld.style.transform = transform;
    // Past 1:1 the result is shown as real pixels; the input side stays smooth, as labelled.
    afterWorld.classList.toggle("pixelated", view.scale * dpr() > 1.01);
    afterLayer.style.clipPath = `inset(0 0 0 ${view.split}%)`;
    divider.style.left = `${view.split}%`;
    const split = Math.round(view.split);
    divider.setAttribute("aria-valuenow", String(split));
    divider.setAttribute("aria-valuetext", `${split}% input, ${100 - split}% result`);
    onChange();
  }

  function clampPan() {
    const { w, h } = frame();
    const sw = view.width * view.scale;
    const sh = view.height * view.scale;
    view.x = sw <= w ? (w - sw) / 2 : Math.min(0, Math.max(w - sw, view.x));
    view.y = sh <= h ? (h - sh) / 2 : Math.min(0, Math.max(h - sh, view.y));
  }

  function zoomTo(scale, cx, cy) {
    const { w, h } = frame();
    const px = cx ?? w / 2;
    const py = cy ?? h / 2;
    const next = Math.min(MAX_ZOOM / dpr(), Math.max(minScale(), scale));
    const wx = (px - view.x) / view.scale;
    const wy = (py - view.y) / view.scale;
    view.scale = next;
    view.x = px - wx * next;
    view.y = py - wy * next;
    view.fitted = false;
    apply();
  }

  function fit() {
    view.scale = fitScale();
    view.fitted = true;
    apply();
  }

  function setSplit(percent) {
    view.split = Math.min(100, Math.max(0, percent));
    apply();
  }

  function splitFromClientX(clientX) {
    const rect = viewer.getBoundingClientRect();
    setSplit(((clientX - rect.left) / rect.width) * 100);
  }

  // Divider: pointer events cover mouse, pen and touch alike.
  divider.addEventListener("pointerdown", (event) => {
    event.stopPropagation();
    event.preventDefault();
    divider.setPointerCapture(event.pointerId);
    divider.classList.add("dragging");
    divider.focus({ preventScroll: true });
  });
  divider.addEventListener("pointermove", (event) => {
    if (divider.hasPointerCapture(event.pointerId)) splitFromClientX(event.clientX);
  });
  const release = (event) => {
    if (divider.hasPointerCapture(event.pointerId)) divider.releasePointerCapture(event.pointerId);
    divider.classList.remove("dragging");
  };
  divider.addEventListener("pointerup", release);
  divider.addEventListener("pointercancel", release);
  divider.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? 10 : 2;
    const moves = { ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step, PageDown: -10, PageUp: 10 };
    if (event.key in moves) setSplit(view.split + moves[event.key]);
    else if (event.key === "Home") setSplit(0);
    else if (event.key === "End") setSplit(100);
    else return;
    event.preventDefault();
    event.stopPropagation();
  });

  // Pan with one pointer, pinch-zoom with two.
  viewer.addEventListener("pointerdown", (event) => {
    if (!view.width || event.button > 0) return;
    viewer.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    gesture = startGesture();
    viewer.classList.add("panning");
  });
  viewer.addEventListener("pointermove", (event) => {
    if (!pointers.has(event.pointerId)) return;
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    const now = startGesture();
    const rect = viewer.getBoundingClientRect();
    if (gesture.count === 2 && now.count === 2 && gesture.distance > 0) {
      zoomTo(gesture.scale * (now.distance / gesture.distance), now.cx - rect.left, now.cy - rect.top);
    }
    view.x += now.cx - gesture.cx;
    view.y += now.cy - gesture.cy;
    view.fitted = false;
    gesture = { ...now, scale: view.scale };
    apply();
  });
  const endPointer = (event) => {
    pointers.delete(event.pointerId);
    gesture = pointers.size ? startGesture() : null;
    if (!pointers.size) viewer.classList.remove("panning");
  };
  viewer.addEventListener("pointerup", endPointer);
  viewer.addEventListener("pointercancel", endPointer);

  function startGesture() {
    const points = [...pointers.values()];
    const cx = points.reduce((s, p) => s + p.x, 0) / points.length;
    const cy = points.reduce((s, p) => s + p.y, 0) / points.length;
    const distance = points.length === 2 ? Math.hypot(points[0].x - points[1].x, points[0].y - points[1].y) : 0;
    return { count: points.length, cx, cy, distance, scale: view.scale };
  }

  viewer.addEventListener(
    "wheel",
    (event) => {
      if (!view.width) return;
      event.preventDefault();
      const rect = viewer.getBoundingClientRect();
      zoomTo(view.scale * Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top);
    },
    { passive: false },
  );

  viewer.addEventListener("dblclick", (event) => {
    if (!view.width || event.target === divider || divider.contains(event.target)) return;
    const rect = viewer.getBoundingClientRect();
    if (Math.abs(view.scale - 1 / dpr()) < 1e-3) fit();
    else zoomTo(1 / dpr(), event.clientX - rect.left, event.clientY - rect.top);
  });

  viewer.addEventListener("keydown", (event) => {
    if (!view.width || event.target !== viewer) return;
    const pans = { ArrowLeft: [KEY_PAN, 0], ArrowRight: [-KEY_PAN, 0], ArrowUp: [0, KEY_PAN], ArrowDown: [0, -KEY_PAN] };
    if (event.key in pans) {
      view.x += pans[event.key][0];
      view.y += pans[event.key][1];
      view.fitted = false;
      apply();
    } else if (event.key === "+" || event.key === "=") zoomTo(view.scale * 1.5);
    else if (event.key === "-") zoomTo(view.scale / 1.5);
    else if (event.key === "0") fit();
    else if (event.key === "1") zoomTo(1 / dpr());
    else return;
    event.preventDefault();
  });

  new ResizeObserver(() => (view.fitted ? fit() : apply())).observe(viewer);

  return {
    /** Shows a new input; `width`/`height` are the output size, so the input is stretched to match the result. */
    load(beforeSrc, width, height) {
      view.width = width;
      view.height = height;
      for (const img of [beforeImg, afterImg]) {
        img.style.width = `${width}px`;
        img.style.height = `${height}px`;
      }
      beforeImg.src = beforeSrc;
      afterImg.removeAttribute("src");
      this.clearPreview();
      view.split = 50;
      fit();
    },
    showAfter(src) {
      afterImg.src = src;
    },
    hasAfter: () => afterImg.hasAttribute("src"),
    /** Lays a crop's result over the output rectangle it covers; `inner` is the part to show (no context margin). */
    showPreview(src, outer, inner) {
      previewBox.style.left = `${inner.x}px`;
      previewBox.style.top = `${inner.y}px`;
      previewBox.style.width = `${inner.w}px`;
      previewBox.style.height = `${inner.h}px`;
      previewImg.style.left = `${outer.x - inner.x}px`;
      previewImg.style.top = `${outer.y - inner.y}px`;
      previewImg.style.width = `${outer.w}px`;
      previewImg.style.height = `${outer.h}px`;
      previewImg.src = src;
      previewBox.hidden = false;
    },
    clearPreview() {
      previewBox.hidden = true;
      previewImg.removeAttribute("src");
    },
    /** The part of the output that is on screen, in output pixels. */
    visibleRect() {
      const { w, h } = frame();
      const x0 = Math.max(0, -view.x / view.scale);
      const y0 = Math.max(0, -view.y / view.scale);
      const x1 = Math.min(view.width, (w - view.x) / view.scale);
      const y1 = Math.min(view.height, (h - view.y) / view.scale);
      return { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0) };
    },
    fit,
    actualSize: () => zoomTo(1 / dpr()),
    zoomIn: () => zoomTo(view.scale * 1.5),
    zoomOut: () => zoomTo(view.scale / 1.5),
    setSplit,
    state: () => ({ ...view, ratio: view.scale * dpr() }),
    onChange(fn) {
      onChange = fn;
    },
  };
}
