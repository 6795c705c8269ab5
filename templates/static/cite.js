// The citation line on a neuron page ends with the page's permalink: show it as an absolute address,
// resolved by the browser from the page's own link (a.atlas-permalink), wherever the site is served.
(function () {
  function setup() {
    var link = document.querySelector("a.atlas-permalink");
    if (!link) { return; }
    link.textContent = link.href;
    document.querySelectorAll(".atlas-citation .atlas-url").forEach(function (span) { span.textContent = link.href; });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setup); } else { setup(); }
})();
