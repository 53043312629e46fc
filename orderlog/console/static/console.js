// Follows the projectors: the queue's table is fetched again every few seconds, unless the
// person is typing in a form or the tab is hidden. No framework, nothing from elsewhere.
(function () {
  "use strict";
  const REFRESH_MS = 5000;
  const table = document.querySelector("[data-refresh]");
  if (!table) return;
  async function refresh() {
    if (document.hidden || document.activeElement && document.activeElement.form) return;
    try {
      const response = await fetch(table.dataset.refresh, { credentials: "same-origin", headers: { accept: "text/html" } });
      if (response.ok && !response.redirected) table.innerHTML = await response.text();
    } catch (error) {
      // the console is restarting, or the network is down: try again next time
    }
  }
  setInterval(refresh, REFRESH_MS);
})();
