// The citation line on a neuron page ends with the page's permalink: show it as an absolute address.
// A published atlas names its public address (<link rel="canonical">, set from site_url) even when the page
// was opened from a download; otherwise the browser resolves the page's own link (a.atlas-permalink). Links
// name files (neurons/042/index.html) so they work from the file system too; the permalink is the folder.
(function () {
  function permalink(href) {
    return href.replace(/\/index\.html$/, "/");
  }
  function setup() {
    var link = document.querySelector("a.atlas-permalink");
    if (!link) { return; }
    var canonical = document.querySelector('link[rel="canonical"]');
    var address = permalink(canonical ? canonical.href : link.href);
    link.textContent = address;
    document.querySelectorAll(".atlas-citation .atlas-url").forEach(function (span) { span.textContent = address; });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setup); } else { setup(); }
})();
