// Autocomplete for every search box marked data-suggest (the header's, the search page's).
// Progressive enhancement: without this file the forms submit to /search as usual.
// ARIA 1.2 combobox with a listbox popup (WAI-ARIA APG "list autocomplete"): arrow keys move
// through the suggestions, Enter opens the chosen entry, Escape closes the list.
// Suggestions come from /api/suggest in the OpenSearch format: [query, names, titles, urls].
// Text only ever goes in through textContent; no inline styles (the CSP forbids them).
(function () {
  "use strict";

  var DEBOUNCE_MS = 90;
  var MIN_CHARS = 2;
  var counter = 0;

  function words(text) {
    return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .split(/[^0-9a-z]+/).filter(Boolean);
  }

  // The name with every word that starts with a typed word in <mark>.
  function fillName(element, name, typed) {
    var parts = name.split(/([^0-9A-Za-z\u00C0-\u024F]+)/);
    parts.forEach(function (part) {
      var folded = words(part)[0] || "";
      var hit = folded && typed.some(function (w) { return folded.indexOf(w) === 0; });
      if (hit) {
        var mark = document.createElement("mark");
        mark.textContent = part;
        element.appendChild(mark);
      } else {
        element.appendChild(document.createTextNode(part));
      }
    });
  }

  function enhance(input) {
    var endpoint = input.getAttribute("data-suggest");
    var form = input.form;
    if (!endpoint || !form || !window.fetch) { return; }
    counter += 1;
    var listId = (input.id || "search") + "-suggestions-" + counter;
    var list = document.createElement("ul");
    list.id = listId;
    list.className = "suggest";
    list.setAttribute("role", "listbox");
    var label = document.querySelector('label[for="' + input.id + '"]');
    list.setAttribute("aria-label", (label ? label.textContent.trim() : "Search") + ": suggestions");
    list.hidden = true;
    var status = document.createElement("div");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    input.insertAdjacentElement("afterend", list);
    list.insertAdjacentElement("afterend", status);
    form.classList.add("has-suggest");

    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", listId);

    var options = [];
    var active = -1;
    var timer = 0;
    var pending = null;
    var lastQuery = null;

    function open() {
      if (!options.length) { return; }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      setActive(-1);
    }

    function setActive(index) {
      active = index;
      options.forEach(function (option, i) {
        option.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      if (index >= 0) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function go(option) {
      // Same-origin path only: the API answers with absolute URLs for browsers' use.
      window.location.assign(new URL(option.getAttribute("data-url"), window.location.href).pathname);
    }

    function render(data) {
      var typed = words(input.value);
      list.textContent = "";
      options = [];
      active = -1;
      var names = data[1] || [], titles = data[2] || [], urls = data[3] || [];
      names.forEach(function (name, i) {
        var option = document.createElement("li");
        option.id = listId + "-" + i;
        option.className = "suggest__option";
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.setAttribute("data-url", urls[i]);
        var nameEl = document.createElement("span");
        nameEl.className = "suggest__name";
        fillName(nameEl, name, typed);
        option.appendChild(nameEl);
        if (titles[i] && titles[i] !== name) {
          var title = document.createElement("span");
          title.className = "suggest__title";
          title.textContent = "→ " + titles[i];
          option.appendChild(title);
        }
        option.addEventListener("mousedown", function (event) { event.preventDefault(); });
        option.addEventListener("click", function () { go(option); });
        list.appendChild(option);
        options.push(option);
      });
      status.textContent = options.length
        ? options.length + (options.length === 1 ? " suggestion" : " suggestions") + ", use the arrow keys"
        : "";
      if (options.length && document.activeElement === input) { open(); } else { close(); }
    }

    function fetchSuggestions() {
      var query = input.value.trim();
      if (query.replace(/\s+/g, "").length < MIN_CHARS) {
        lastQuery = null;
        options = [];
        list.textContent = "";
        close();
        return;
      }
      if (query === lastQuery) { open(); return; }
      if (pending) { pending.abort(); }
      var controller = window.AbortController ? new AbortController() : null;
      pending = controller;
      var url = endpoint + "?q=" + encodeURIComponent(query);
      fetch(url, { headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || input.value.trim() !== query) { return; }
          lastQuery = query;
          render(data);
        })
        .catch(function () { /* aborted or offline: the form still works */ });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(fetchSuggestions, DEBOUNCE_MS);
    });

    input.addEventListener("keydown", function (event) {
      var expanded = !list.hidden;
      if (event.key === "ArrowDown" || event.key === "Down") {
        event.preventDefault();
        if (!expanded) { open(); if (options.length) { setActive(0); } return; }
        setActive(active + 1 >= options.length ? 0 : active + 1);
      } else if (event.key === "ArrowUp" || event.key === "Up") {
        event.preventDefault();
        if (!expanded) { open(); if (options.length) { setActive(options.length - 1); } return; }
        setActive(active - 1 < 0 ? options.length - 1 : active - 1);
      } else if (event.key === "Enter") {
        if (expanded && active >= 0) {
          event.preventDefault();
          go(options[active]);
        }
      } else if (event.key === "Escape" || event.key === "Esc") {
        if (expanded) {
          event.preventDefault();
          close();
        } else if (input.value) {
          event.preventDefault();
          input.value = "";
          lastQuery = null;
          options = [];
          list.textContent = "";
        }
      } else if (event.key === "Tab") {
        close();
      }
    });

    input.addEventListener("blur", close);
    input.addEventListener("focus", function () {
      if (input.value.trim() === lastQuery) { open(); }
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("input[data-suggest]"), enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
