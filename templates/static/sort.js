// Tables inside .atlas-sortable: each column header is a button that sorts by its column, largest first for
// a column of numbers and A to Z for one of words; a second click reverses. A cell sorts by its first number
// when it has one (−, the typographic minus, counts as minus), else by its text. Each cell is labelled
// with its column's name (data-label), which narrow screens show when a row becomes a card (atlas.css).
// A <select data-atlas-filter="column name"> in a p[data-atlas-filter-for=table's container id] shows only
// the rows whose cell in that column says the chosen value; its <output> counts them.
(function () {
  function key(cell) {
    var text = cell.textContent.replace(/\u2212/g, "-").trim();
    var match = text.match(/-?\d+(\.\d+)?/);
    return match ? parseFloat(match[0]) : text.toLowerCase();
  }
  function numeric(rows, column) {
    return rows.some(function (row) { return typeof key(row.cells[column]) === "number"; });
  }
  function label(th) {
    return th.textContent.trim();
  }
  function sortBy(table, th, column) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var current = th.getAttribute("aria-sort");  // "none" until sorted by this column
    var descending = current === "ascending" || (current !== "descending" && numeric(rows, column));
    table.querySelectorAll("thead th").forEach(function (other) { other.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    rows.sort(function (a, b) {
      var x = key(a.cells[column]), y = key(b.cells[column]);
      if (x === "" || y === "") { return x === y ? 0 : x === "" ? 1 : -1; }  // empty cells last, either way
      var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  function setupTable(table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, column) {
      var name = label(th);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        if (row.cells[column]) { row.cells[column].setAttribute("data-label", name); }
      });
      var button = document.createElement("button");
      button.type = "button";
      button.className = "atlas-sort";
      button.title = "Sort by " + name;
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      th.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () { sortBy(table, th, column); });
    });
  }
  function setupFilter(p) {
    var container = document.getElementById(p.getAttribute("data-atlas-filter-for"));
    var table = container && container.querySelector("table");
    var select = p.querySelector("select[data-atlas-filter]");
    if (!table || !select) { return; }
    var want = select.getAttribute("data-atlas-filter").toLowerCase();
    var column = Array.prototype.findIndex.call(table.querySelectorAll("thead th"), function (th) {
      return label(th).toLowerCase() === want;
    });
    var count = p.querySelector("[data-atlas-filter-count]");
    function apply() {
      var rows = Array.prototype.slice.call(table.tBodies[0].rows), shown = 0;
      rows.forEach(function (row) {
        var cell = row.cells[column], link = cell && cell.querySelector("a");
        var value = (link || cell || {textContent: ""}).textContent.trim();
        var show = !select.value || value === select.value;
        row.hidden = !show;
        shown += show ? 1 : 0;
      });
      if (count) { count.textContent = select.value ? shown + " of " + rows.length : ""; }
    }
    if (column >= 0) { select.addEventListener("change", apply); apply(); }
  }
  function setup() {
    document.querySelectorAll(".atlas-sortable table").forEach(setupTable);
    document.querySelectorAll("[data-atlas-filter-for]").forEach(setupFilter);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setup); } else { setup(); }
})();
