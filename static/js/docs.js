// Starts Swagger UI on /docs from a file, since the CSP forbids inline script.
"use strict";
(function () {
  const target = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: target.dataset.spec, domNode: target, deepLinking: true });
})();
