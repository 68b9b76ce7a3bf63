// Polls the recompute progress fragment every second while a recompute runs, and puts the
// fresh fragment in place. Without JavaScript the page still shows the state at load time.
(function () {
  "use strict";
  var container = document.getElementById("recompute-status");
  if (!container) {
    return;
  }

  function poll() {
    var active = container.querySelector("[data-active]");
    if (!active) {
      return;
    }
    fetch(active.getAttribute("data-progress-url"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("progress answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        container.innerHTML = html;
        window.setTimeout(poll, 1000);
      })
      .catch(function () {
        window.setTimeout(poll, 5000); // a network blip: try again, more slowly
      });
  }

  window.setTimeout(poll, 1000);
})();
