// Polls an environment's status while an operation runs, so progress shows
// without reloading; reloads once it ends so history and cards are current.
(function () {
  var el = document.getElementById("env-status");
  if (!el) return;
  var url = el.getAttribute("data-status-url");
  var wasRunning = false;
  function set(name, text) {
    var f = document.querySelector('[data-field="' + name + '"]');
    if (!f) return;
    if (name === "progress") { f.value = text; f.textContent = text + "%"; return; }
    f.textContent = text;
    if (f.classList.contains("badge")) {
      var s = String(text).toLowerCase();
      f.className = "badge " + (/^(enabled|encrypted|succeeded|healthy)$/.test(s) ? "ok" : /^(disabled|failed)$/.test(s) ? "bad" : /^(encrypting|running)$/.test(s) ? "busy" : "neutral");
    }
  }
  function tick() {
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (v) {
      if (!v) return;
      set("state", v.state); set("encryption", v.encryption); set("progress", v.progress); set("keyManagedBy", v.keyManagedBy);
      set("operation", v.running ? (v.operation || "An operation") + " is running…" : "");
      if (wasRunning && !v.running) { location.reload(); return; }
      wasRunning = v.running;
    }).catch(function () {}).finally(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
