// zturbo report: lightbox with recipe + command, and the comparison sliders. Plain JS, no network.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent).items;
  function el(id) { return document.getElementById(id); }
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

  // A report/ folder copied without its sweep has thumbnails but no originals: show the thumbnail and
  // say where the original was expected, instead of a black box.
  function withFallback(img, d, note) {
    img.onerror = function () {
      if (d.thumb && img.getAttribute("src") !== d.thumb) {
        img.src = d.thumb;
        if (note) { note.hidden = false; note.textContent = "Original not found at " + decodeURI(d.full) + " (keep report/ inside its sweep folder): showing the thumbnail."; }
      }
    };
  }

  // ---- lightbox: full size, recipe, copyable command; ←/→ step through the experiment's frames ----
  var box = el("lightbox"), current = null;

  function framesOf(exp) {
    return Array.prototype.filter.call(document.querySelectorAll(".frame .open"),
      function (b) { return b.getAttribute("data-exp") === exp; });
  }

  function openItem(id, exp) {
    var d = DATA[id];
    if (!d) return;
    var v = (d.views || {})[exp] || {};
    current = { id: id, exp: exp };
    el("lb-title").textContent = v.label || id;
    el("lb-caption").textContent = v.caption || "";
    el("lb-flag").textContent = v.flag ? "⚠ " + v.flag : "";
    var img = el("lb-img"), link = el("lb-full"), failed = el("lb-failed");
    if (d.full) {
      withFallback(img, d, el("lb-copied"));
      img.src = d.full; img.alt = v.label || id; link.href = d.full; link.hidden = false; failed.hidden = true;
    } else {  // failed or not made: say so where the image would be, no empty black box
      img.removeAttribute("src"); link.removeAttribute("href"); link.hidden = true; failed.hidden = false;
      failed.textContent = d.status === "failed" ? "This frame failed: " + (d.error || "no error recorded") : "Not generated yet";
    }
    var table = el("lb-recipe");
    table.textContent = "";
    (d.recipe || []).forEach(function (row) {
      var tr = table.insertRow(), k = tr.insertCell(), c = tr.insertCell();
      k.textContent = row[0]; c.textContent = row[1];
    });
    el("lb-cmd-label").textContent = d.full ? "Reproduce it:" :
      d.status === "failed" ? "Try it again (it failed in the sweep):" : "Make it (not generated yet):";
    el("lb-cmd").textContent = d.command || "";
    el("lb-copied").textContent = "";
    var list = framesOf(exp), i = list.findIndex(function (b) { return b.getAttribute("data-id") === id; });
    el("lb-pos").textContent = (i + 1) + " / " + list.length;
    el("lb-prev").disabled = i <= 0;
    el("lb-next").disabled = i >= list.length - 1;
    if (!box.open) box.showModal();
  }
  function step(delta) {
    if (!current) return;
    var list = framesOf(current.exp), i = list.findIndex(function (b) { return b.getAttribute("data-id") === current.id; });
    var next = list[i + delta];
    if (next) openItem(next.getAttribute("data-id"), current.exp);
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest(".frame .open");
    if (b) openItem(b.getAttribute("data-id"), b.getAttribute("data-exp"));
  });
  el("lb-close").addEventListener("click", function () { box.close(); });
  el("lb-prev").addEventListener("click", function () { step(-1); });
  el("lb-next").addEventListener("click", function () { step(1); });
  box.addEventListener("click", function (ev) { if (ev.target === box) box.close(); });
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "ArrowLeft") { step(-1); ev.preventDefault(); }
    if (ev.key === "ArrowRight") { step(1); ev.preventDefault(); }
  });
  el("lb-copy").addEventListener("click", function () {
    var text = el("lb-cmd").textContent, done = function (ok) { el("lb-copied").textContent = ok ? "copied" : "select and copy by hand"; };
    function fallback() {  // file:// pages may not get the async clipboard
      var r = document.createRange(); r.selectNodeContents(el("lb-cmd"));
      var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
      var ok = false; try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    else fallback();
  });

  // ---- comparison slider -------------------------------------------------------------------
  function setupCompare(root) {
    var zoom = parseFloat(root.getAttribute("data-zoom")) || 3;
    var groups = JSON.parse(root.getAttribute("data-groups"));  // [[title, [[id, text], ...]], ...]
    var cmp = root.querySelector(".cmp"), divider = root.querySelector(".divider");
    var groupPick = root.querySelector("select.group");
    var picks = { a: root.querySelector('.pick[data-side="a"]'), b: root.querySelector('.pick[data-side="b"]') };
    var imgs = { a: root.querySelector(".img-a"), b: root.querySelector(".img-b") };
    var tags = { a: root.querySelector(".tag-a"), b: root.querySelector(".tag-b") };
    var inners = root.querySelectorAll(".inner");
    var mini = root.querySelector(".mini-frame"), miniImg = root.querySelector(".mini-img"), region = root.querySelector(".region");
    var note = root.querySelector(".cmp-missing");
    var state = { pos: 50, cx: 0.5, cy: 0.35 };  // the zoomed region starts high and central: a head, usually

    // the pickers list one group's frames (a quant recipe's precisions, a seeds row)
    function fill(g, a, b) {
      ["a", "b"].forEach(function (s) {
        picks[s].textContent = "";
        groups[g][1].forEach(function (f) { picks[s].add(new Option(f[1], f[0])); });
      });
      picks.a.value = a || groups[g][1][0][0];
      picks.b.value = b || groups[g][1][1][0];
    }
    function groupOf(id) {
      return Math.max(0, groups.findIndex(function (g) { return g[1].some(function (f) { return f[0] === id; }); }));
    }
    fill(groupOf(root.getAttribute("data-a")), root.getAttribute("data-a"), root.getAttribute("data-b"));
    if (groupPick) groupPick.addEventListener("change", function () {
      // neighbours again: the group's first two frames
      fill(groupPick.selectedIndex); exclusive("a"); show();
    });

    // The article's rule: the two sides never show the same frame.
    function exclusive(changed) {
      var other = changed === "a" ? "b" : "a";
      if (picks.a.value === picks.b.value) {
        var opts = picks[other].options, i = picks[changed].selectedIndex;
        picks[other].selectedIndex = (i + 1) % opts.length;
      }
      ["a", "b"].forEach(function (s) {
        var o = s === "a" ? "b" : "a";
        Array.prototype.forEach.call(picks[s].options, function (opt) { opt.disabled = opt.value === picks[o].value; });
      });
    }
    function show() {
      ["a", "b"].forEach(function (s) {
        var d = DATA[picks[s].value];
        withFallback(imgs[s], d, note);
        if (imgs[s].getAttribute("src") !== d.full) imgs[s].src = d.full;
        tags[s].textContent = picks[s].options[picks[s].selectedIndex].textContent;
      });
      var d = DATA[picks.a.value];
      if (miniImg.getAttribute("src") !== d.thumb) miniImg.src = d.thumb;
      // the box takes the shape of the frames shown (the left one when they differ), and fits the screen
      var r = (d.w || 1) / (d.h || 1);
      cmp.style.aspectRatio = d.w + " / " + d.h;
      cmp.style.width = "min(100%, 640px, calc(70vh * " + r.toFixed(4) + "))";
      mini.style.aspectRatio = cmp.style.aspectRatio;
      if (groupPick) groupPick.selectedIndex = groupOf(picks.a.value);
    }
    function setPos(p) {
      state.pos = clamp(p, 0, 100);
      cmp.style.setProperty("--pos", state.pos + "%");
      divider.setAttribute("aria-valuenow", Math.round(state.pos));
    }
    function applyZoom() {
      var zoomed = root.getAttribute("data-mode") === "zoom", half = 0.5 / zoom;
      state.cx = clamp(state.cx, half, 1 - half);
      state.cy = clamp(state.cy, half, 1 - half);
      // both sides get the same transform: they stay in register
      var t = zoomed ? "translate(" + (50 - zoom * state.cx * 100) + "%," + (50 - zoom * state.cy * 100) + "%) scale(" + zoom + ")" : "none";
      Array.prototype.forEach.call(inners, function (n) { n.style.transform = t; });
      region.style.width = region.style.height = (100 / zoom) + "%";
      region.style.left = ((state.cx - half) * 100) + "%";
      region.style.top = ((state.cy - half) * 100) + "%";
    }

    ["a", "b"].forEach(function (s) {
      picks[s].addEventListener("change", function () { exclusive(s); show(); });
    });
    root.querySelectorAll('input[type="radio"]').forEach(function (r) {
      r.addEventListener("change", function () { if (r.checked) { root.setAttribute("data-mode", r.value); applyZoom(); } });
    });

    // divider: press anywhere on the frame and drag. A finger moves it only once its move is clearly
    // sideways, or on a tap: a vertical swipe is the page's scroll (touch-action: pan-y), not the divider's.
    var touch = null;
    function fromEvent(ev) { var r = cmp.getBoundingClientRect(); return (ev.clientX - r.left) / r.width * 100; }
    cmp.addEventListener("pointerdown", function (ev) {
      if (ev.pointerType === "touch") { touch = { id: ev.pointerId, x: ev.clientX, y: ev.clientY, mode: "" }; return; }
      cmp.setPointerCapture(ev.pointerId); setPos(fromEvent(ev)); ev.preventDefault();
    });
    cmp.addEventListener("pointermove", function (ev) {
      if (touch && touch.id === ev.pointerId) {
        var dx = Math.abs(ev.clientX - touch.x), dy = Math.abs(ev.clientY - touch.y);
        if (!touch.mode && Math.max(dx, dy) > 6) touch.mode = dx > dy ? "drag" : "scroll";
        if (touch.mode === "drag") setPos(fromEvent(ev));
      } else if (cmp.hasPointerCapture(ev.pointerId)) setPos(fromEvent(ev));
    });
    cmp.addEventListener("pointerup", function (ev) {
      if (touch && touch.id === ev.pointerId && !touch.mode) setPos(fromEvent(ev));
      touch = null;
    });
    cmp.addEventListener("pointercancel", function () { touch = null; });  // the page took it: a scroll
    divider.addEventListener("keydown", function (ev) {
      var to = { ArrowLeft: state.pos - 2, ArrowRight: state.pos + 2, PageDown: state.pos - 10, PageUp: state.pos + 10, Home: 0, End: 100 }[ev.key];
      if (to !== undefined) { setPos(to); ev.preventDefault(); }
    });

    // zoomed region: drag its box on the minimap, or focus it and use the arrow keys
    function moveRegion(ev) {
      var r = mini.getBoundingClientRect();
      state.cx = (ev.clientX - r.left) / r.width; state.cy = (ev.clientY - r.top) / r.height; applyZoom();
    }
    mini.addEventListener("pointerdown", function (ev) { mini.setPointerCapture(ev.pointerId); moveRegion(ev); ev.preventDefault(); });
    mini.addEventListener("pointermove", function (ev) { if (mini.hasPointerCapture(ev.pointerId)) moveRegion(ev); });
    region.addEventListener("keydown", function (ev) {
      var d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[ev.key];
      if (!d) return;
      var s = (ev.shiftKey ? 0.5 : 0.1) / zoom;
      state.cx += d[0] * s; state.cy += d[1] * s; applyZoom(); ev.preventDefault();
    });

    exclusive("a"); show(); setPos(50); applyZoom();
  }
  document.querySelectorAll(".compare").forEach(setupCompare);
})();
