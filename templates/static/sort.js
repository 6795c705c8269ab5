// Click a column header of a table inside .atlas-sortable to sort by it; click again to reverse.
// Cells sort by their first number when they have one (−, the typographic minus, counts as minus).
(function () {
  function key(cell) {
    var text = cell.textContent.replace(/\u2212/g, "-").trim();
    var match = text.match(/-?\d+(\.\d+)?/);
    return match ? parseFloat(match[0]) : text.toLowerCase();
  }
  function setup() {
    document.querySelectorAll(".atlas-sortable table").forEach(function (table) {
      table.querySelectorAll("thead th").forEach(function (th, column) {
        th.title = "Sort by this column";
        th.addEventListener("click", function () {
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          var ascending = th.getAttribute("aria-sort") !== "ascending";
          table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
          th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
          rows.sort(function (a, b) {
            var x = key(a.cells[column]), y = key(b.cells[column]);
            var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
            return ascending ? order : -order;
          });
          rows.forEach(function (row) { body.appendChild(row); });
        });
      });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setup); } else { setup(); }
})();
