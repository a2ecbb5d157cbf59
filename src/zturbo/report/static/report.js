// zturbo report: lightbox with recipe + command, and the comparison sliders. Plain JS, no network.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent).items;

  // ---- lightbox: full size, recipe, copyable command -------------------------------------
  var box = document.getElementById("lightbox");
  function el(id) { return document.getElementById(id); }

  function openItem(id, exp) {
    var d = DATA[id];
    if (!d) return;
    var v = (d.views || {})[exp] || {};
    el("lb-title").textContent = v.label || id;
    el("lb-caption").textContent = v.caption || "";
    el("lb-flag").textContent = v.flag ? "⚠ " + v.flag : "";
    var img = el("lb-img"), link = el("lb-full");
    if (d.full) { img.src = d.full; img.alt = v.label || id; link.href = d.full; link.hidden = false; }
    else { img.removeAttribute("src"); link.removeAttribute("href"); link.hidden = true; }
    var table = el("lb-recipe");
    table.textContent = "";
    (d.recipe || []).forEach(function (row) {
      var tr = table.insertRow(), k = tr.insertCell(), v = tr.insertCell();
      k.textContent = row[0]; v.textContent = row[1];
    });
    el("lb-cmd").textContent = d.command || "";
    el("lb-copied").textContent = "";
    if (!box.open) box.showModal();
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest(".frame .open");
    if (b) openItem(b.getAttribute("data-id"), b.getAttribute("data-exp"));
  });
  el("lb-close").addEventListener("click", function () { box.close(); });
  box.addEventListener("click", function (ev) { if (ev.target === box) box.close(); });
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
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

  function setupCompare(root) {
    var zoom = parseFloat(root.getAttribute("data-zoom")) || 3;
    var cmp = root.querySelector(".cmp"), divider = root.querySelector(".divider");
    var picks = { a: root.querySelector('.pick[data-side="a"]'), b: root.querySelector('.pick[data-side="b"]') };
    var imgs = { a: root.querySelector(".img-a"), b: root.querySelector(".img-b") };
    var tags = { a: root.querySelector(".tag-a"), b: root.querySelector(".tag-b") };
    var inners = root.querySelectorAll(".inner");
    var mini = root.querySelector(".mini-frame"), miniImg = root.querySelector(".mini-img"), region = root.querySelector(".region");
    var state = { pos: 50, cx: 0.5, cy: 0.35 };  // the zoomed region starts high and central: a head, usually

    picks.a.value = root.getAttribute("data-a");
    picks.b.value = root.getAttribute("data-b");

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
        if (imgs[s].getAttribute("src") !== d.full) imgs[s].src = d.full;
        tags[s].textContent = picks[s].options[picks[s].selectedIndex].textContent;
      });
      var d = DATA[picks.a.value];
      if (miniImg.getAttribute("src") !== d.thumb) miniImg.src = d.thumb;
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
      // the minimap box has the left frame's proportions, so the region box maps 1:1
      mini.style.aspectRatio = cmp.style.aspectRatio;
    }

    ["a", "b"].forEach(function (s) {
      picks[s].addEventListener("change", function () { exclusive(s); show(); });
    });
    root.querySelectorAll('input[type="radio"]').forEach(function (r) {
      r.addEventListener("change", function () { if (r.checked) { root.setAttribute("data-mode", r.value); applyZoom(); } });
    });

    // divider: press anywhere on the frame and drag
    function fromEvent(ev) { var r = cmp.getBoundingClientRect(); return (ev.clientX - r.left) / r.width * 100; }
    cmp.addEventListener("pointerdown", function (ev) {
      cmp.setPointerCapture(ev.pointerId); setPos(fromEvent(ev)); ev.preventDefault();
    });
    cmp.addEventListener("pointermove", function (ev) { if (cmp.hasPointerCapture(ev.pointerId)) setPos(fromEvent(ev)); });
    divider.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowLeft") { setPos(state.pos - 2); ev.preventDefault(); }
      if (ev.key === "ArrowRight") { setPos(state.pos + 2); ev.preventDefault(); }
    });

    // zoomed region: drag its box on the minimap
    function moveRegion(ev) {
      var r = mini.getBoundingClientRect();
      state.cx = (ev.clientX - r.left) / r.width; state.cy = (ev.clientY - r.top) / r.height; applyZoom();
    }
    mini.addEventListener("pointerdown", function (ev) { mini.setPointerCapture(ev.pointerId); moveRegion(ev); ev.preventDefault(); });
    mini.addEventListener("pointermove", function (ev) { if (mini.hasPointerCapture(ev.pointerId)) moveRegion(ev); });

    exclusive("a"); show(); setPos(50); applyZoom();
  }
  document.querySelectorAll(".compare").forEach(setupCompare);
})();
