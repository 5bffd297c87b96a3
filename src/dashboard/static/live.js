// Follows the database without reloading the page: the server sends a
// `change` event (server-sent events on /events) when anything the page shows
// changed; the page then fetches itself and swaps its <main> in place.
// Without scripts, the <noscript> refresh in the page's head does the same.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var busy = false;
  var again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main[data-live]");
        var old = document.querySelector("main[data-live]");
        if (fresh && old) old.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () {})
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  var source = new EventSource("/events");
  source.addEventListener("change", refresh);
})();
