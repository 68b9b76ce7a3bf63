/* Keeps a running sync's progress fresh without reloading the page.
 *
 * Every element with data-poll-url is fetched again each second. The answer holds an element
 * with the same id (a fragment, or a whole page); its attributes and contents replace ours,
 * in place, so focus and the live region stay put. When the fresh element no longer carries
 * data-poll-url (the run has ended) polling stops. No framework, no dependencies.
 */
(function () {
  "use strict";

  var INTERVAL_MS = 1000;
  var MAX_FAILURES = 10;

  function freshCopy(html, id) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    return doc.getElementById(id);
  }

  function adopt(element, fresh) {
    Array.prototype.slice.call(element.attributes).forEach(function (attribute) {
      if (attribute.name !== "id" && !fresh.hasAttribute(attribute.name)) {
        element.removeAttribute(attribute.name);
      }
    });
    Array.prototype.slice.call(fresh.attributes).forEach(function (attribute) {
      element.setAttribute(attribute.name, attribute.value);
    });
    element.innerHTML = fresh.innerHTML;
  }

  function poll(element, failures) {
    var url = element.getAttribute("data-poll-url");
    if (!url || !element.id || failures >= MAX_FAILURES) {
      element.setAttribute("aria-busy", "false");
      return;
    }
    // Back off after failures (a restart, a dropped connection) rather than hammering the server.
    var delay = INTERVAL_MS * Math.pow(2, Math.min(failures, 4));
    window.setTimeout(function () {
      if (document.hidden) {
        poll(element, failures);
        return;
      }
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          var fresh = freshCopy(html, element.id);
          if (!fresh) {
            // The page no longer shows this sync (e.g. it stopped waiting): stop, and say where to look.
            element.removeAttribute("data-poll-url");
            element.setAttribute("aria-busy", "false");
            element.textContent = "Reload the page to see the latest status.";
            return;
          }
          adopt(element, fresh);
          poll(element, 0);
        })
        .catch(function () {
          poll(element, failures + 1);
        });
    }, delay);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll-url][id]"), function (element) {
      poll(element, 0);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
