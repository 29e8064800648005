// Starts Swagger UI on /docs from a file, since the CSP forbids inline script.
// deepLinking stays off: it puts a link inside each operation's toggle button, which screen
// readers cannot reach (axe: nested-interactive).
"use strict";
(function () {
  const target = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: target.dataset.spec, domNode: target, deepLinking: false });
})();
