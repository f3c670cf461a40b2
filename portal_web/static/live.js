/* Live updates on portal pages (Server-Sent Events from /{slug}/events).
 *
 * The page provides <script type="application/json" id="live-config"> with
 * the events URL, locale, timezone and translated labels. Elements opt in
 * with data attributes:
 *   [data-booking="<public id>"]  [data-field="when"] and [data-field="ends"] (<time>s), [data-field="status"]
 *   [data-message="<id>"]         [data-field="message-status"]
 *   #live-banner                  a role="status" region for a short notice
 * No reload: text is updated in place. EventSource reconnects by itself.
 * Also: [data-print] buttons print the page (no inline script under our CSP);
 *   [data-print-only] wrappers, hidden in the markup, are shown once this script runs.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var target = event.target.closest && event.target.closest("[data-print]");
    if (target) { window.print(); }
  });
  // Without this script the button could do nothing: it stays hidden (the browser's own Print remains).
  Array.prototype.forEach.call(document.querySelectorAll("[data-print-only]"), function (node) {
    node.hidden = false;
  });

  var configNode = document.getElementById("live-config");
  if (!configNode || !window.EventSource) { return; }
  var config;
  try { config = JSON.parse(configNode.textContent); } catch (e) { return; }
  var text = config.text || {};

  function formatWhen(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return iso; }
    try {
      var parts = new Intl.DateTimeFormat(config.locale, {
        dateStyle: "full", timeZone: config.tz
      }).formatToParts(date);
      var french = String(config.locale).slice(0, 2) === "fr";
      // "1er décembre", as the server writes it (portal/dates.py).
      var day = parts.map(function (part) {
        return french && part.type === "day" && part.value === "1" ? "1er" : part.value;
      }).join("");
      // "<full date>, <short time>" like the server (portal_web/i18n.py), not Intl's "... at ..." / "... à ...".
      return day + ", " + formatTime(iso);
    } catch (e) {
      return date.toLocaleString();
    }
  }

  function formatTime(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return iso; }
    try {
      return new Intl.DateTimeFormat(config.locale, { timeStyle: "short", timeZone: config.tz }).format(date);
    } catch (e) {
      return date.toLocaleTimeString();
    }
  }

  function banner(message) {
    var node = document.getElementById("live-banner");
    if (!node || !message) { return; }
    node.textContent = message;
    node.hidden = false;
  }

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function cssEscape(value) {
    return window.CSS && CSS.escape ? CSS.escape(String(value)) : String(value).replace(/[^A-Za-z0-9_-]/g, "");
  }

  var handlers = {
    booking_updated: function (data) {
      var found = false;
      each('[data-booking="' + cssEscape(data.booking) + '"]', function (card) {
        found = true;
        var when = card.querySelector('[data-field="when"]');
        if (when && data.starts_at) {
          when.setAttribute("datetime", data.starts_at);
          when.textContent = formatWhen(data.starts_at);
        }
        // The end moves with the start: a stale "(until ...)" would contradict the new time.
        var ends = card.querySelector('[data-field="ends"]');
        if (ends && data.ends_at) {
          ends.setAttribute("datetime", data.ends_at);
          ends.textContent = formatTime(data.ends_at);
        }
        var status = card.querySelector('[data-field="status"]');
        if (status && data.status) {
          status.textContent = (config.status_labels || {})[data.status] || data.status;
          status.setAttribute("data-status", data.status);
          status.className = "badge badge--" + data.status;
          if (data.status !== "scheduled") { status.hidden = false; }  // the home page hides "Scheduled"
        }
        card.classList.add("is-updated");
      });
      if (found) { banner(text.booking_updated); }
    },
    message_status: function (data) {
      var id = data.message_id || data.message;
      each('[data-message="' + cssEscape(id) + '"] [data-field="message-status"]', function (node) {
        node.textContent = (config.message_status_labels || {})[data.status] || data.status;
      });
    },
    quote_updated: function () { banner(text.quote_updated); },
    invoice_updated: function () { banner(text.invoice_updated); },
    preferences: function () { banner(text.preferences); }
  };

  var source = new EventSource(config.events);
  Object.keys(handlers).forEach(function (type) {
    source.addEventListener(type, function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      handlers[type](data || {});
    });
  });
  document.documentElement.setAttribute("data-live", "connecting");
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "open");
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
