// Runs before the page is drawn, so a chosen colour scheme never flashes the other one first.
(function () {
  try {
    var theme = localStorage.getItem("chatkeep-theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage may be off: the system's scheme applies */ }
})();
