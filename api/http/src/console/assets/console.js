// Kassa console: refreshes the overview's live part every couple of
// seconds. Served from the binary under the console's CSP (script-src
// 'self'); the fragment is HTML rendered and escaped by the server.
(function () {
  "use strict";
  function poll() {
    var live = document.getElementById("live");
    if (!live || !window.fetch) { return; }
    var every = parseInt(live.getAttribute("data-every-ms"), 10) || 2000;
    var url = live.getAttribute("data-src");
    function refresh() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || response.status === 401 || response.status === 403) {
            window.location.reload();
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) { live.innerHTML = html; }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { window.setTimeout(refresh, every); });
    }
    window.setTimeout(refresh, every);
  }
  function selectAll() {
    var form = document.getElementById("bulk-retry");
    if (!form) { return; }
    var header = form.querySelector("thead th");
    if (!header || !form.querySelector("input[type=checkbox]")) { return; }
    var all = document.createElement("input");
    all.type = "checkbox";
    all.id = "select-all";
    all.setAttribute("aria-label", "select every dead job on this page");
    all.addEventListener("change", function () {
      form.querySelectorAll("tbody input[type=checkbox]").forEach(function (box) { box.checked = all.checked; });
    });
    header.appendChild(all);
  }
  document.addEventListener("DOMContentLoaded", function () { poll(); selectAll(); });
})();
