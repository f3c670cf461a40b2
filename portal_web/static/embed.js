/* Customer Portal embed: adds a "Customer login" button, or the sign-in form
 * in an iframe, to a business's own website. See docs/embedding.md.
 *
 *   <script src="https://portal.example.com/static/embed.js" data-business="pro-home-services" async></script>
 *
 * Attributes: data-business (required, the portal slug), data-mode ("button",
 * default, or "iframe"), data-lang ("en" or "fr"; default: the page's <html lang>),
 * data-target (a CSS selector to put it in; default: right after the script),
 * data-label (button text). The iframe only loads on origins the business
 * listed in its embed origins (the portal's CSP frame-ancestors); anywhere else
 * the browser refuses it.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var slug = script.getAttribute("data-business") || "";
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(slug)) {
    if (window.console) { console.warn("portal embed: data-business is missing or invalid"); }
    return;
  }
  var origin = new URL(script.src, document.baseURI).origin;
  var pageLang = (document.documentElement.getAttribute("lang") || "").toLowerCase();
  var lang = (script.getAttribute("data-lang") || pageLang).slice(0, 2) === "fr" ? "fr" : "en";
  var path = "/" + slug + (lang === "fr" ? "/connexion" : "/signin");
  var mode = script.getAttribute("data-mode") === "iframe" ? "iframe" : "button";
  var el;
  if (mode === "iframe") {
    el = document.createElement("iframe");
    el.src = origin + path;
    el.title = lang === "fr" ? "Espace client" : "Customer login";
    el.loading = "lazy";
    el.referrerPolicy = "strict-origin";
    el.className = "customer-portal-frame";
    el.style.cssText = "width:100%;max-width:32rem;height:34rem;border:0;";
  } else {
    el = document.createElement("a");
    el.href = origin + path;
    el.target = "_blank";
    el.rel = "noopener";
    el.className = "customer-portal-login";
    el.textContent = script.getAttribute("data-label") || (lang === "fr" ? "Espace client" : "Customer login");
    el.style.cssText = "display:inline-block;padding:.7em 1.2em;border-radius:.4em;font:600 1rem system-ui,sans-serif;" +
      "text-decoration:none;background:#111827;color:#fff;";
  }
  var target = script.getAttribute("data-target");
  var host = target ? document.querySelector(target) : null;
  if (host) {
    host.appendChild(el);
  } else if (script.parentNode) {
    script.parentNode.insertBefore(el, script.nextSibling);
  }
})();
