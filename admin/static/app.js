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

// Follows a state that changes on its own (a provider or feature being
// registered, a deployment running): polls the badge's status URL, updates
// the badge in place, shows the row's buttons that fit the new state, and
// reloads the page when the state settles if the badge asks for it.
(function () {
  // Buttons get display:inline-block from the style sheet, which beats the
  // hidden attribute; setting the style keeps hidden ones hidden.
  function show(b, on) { b.hidden = !on; b.style.display = on ? "" : "none"; }
  Array.prototype.forEach.call(document.querySelectorAll("[data-show-when][hidden]"), function (b) { show(b, false); });
  var badges = document.querySelectorAll("[data-poll-url]");
  Array.prototype.forEach.call(badges, function (el) {
    var url = el.getAttribute("data-poll-url");
    var row = el.closest("[data-row]");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (v) {
        if (!v || !v.state) { setTimeout(tick, 2000); return; }
        el.textContent = v.state;
        el.className = "badge " + v["class"];
        if (row) {
          Array.prototype.forEach.call(row.querySelectorAll("[data-show-when]"), function (b) {
            show(b, b.getAttribute("data-show-when").split(" ").indexOf(v.state) >= 0);
          });
        }
        if (!v.done) { setTimeout(tick, 1000); return; }
        if (el.hasAttribute("data-reload-when-done")) location.reload();
      }).catch(function () { setTimeout(tick, 2000); });
    }
    setTimeout(tick, 500);
  });
})();

// Refills the policy form's key list when another vault is chosen, so that
// "Show this vault's keys" (the form's way without script) is not needed.
(function () {
  var vault = document.getElementById("vault");
  var key = document.getElementById("key");
  if (!vault || !key || !vault.hasAttribute("data-keys-url") || key.tagName !== "SELECT") return;
  var button = document.getElementById("show-keys");
  function showButton(on) { if (button) { button.hidden = !on; button.style.display = on ? "" : "none"; } }
  showButton(false);
  vault.addEventListener("change", function () {
    var url = vault.getAttribute("data-keys-url") + "?vault=" + encodeURIComponent(vault.value);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      return r.json();
    }).then(function (v) {
      if (!v.keys) { showButton(true); return; }
      key.innerHTML = "";
      v.keys.forEach(function (name) {
        var o = document.createElement("option");
        o.value = name; o.textContent = name;
        key.appendChild(o);
      });
      if (!v.keys.length) {
        var o = document.createElement("option");
        o.value = ""; o.textContent = "This vault has no keys";
        key.appendChild(o);
      }
    }).catch(function () { showButton(true); });
  });
})();
