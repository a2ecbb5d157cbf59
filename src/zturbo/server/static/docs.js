// Renders /openapi.json as a plain list: the API docs without a CDN (Swagger UI would need one).
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function schemaRows(spec, schema) {
  if (schema && schema.$ref) schema = spec.components.schemas[schema.$ref.split("/").pop()];
  const table = el("table");
  for (const [name, prop] of Object.entries((schema && schema.properties) || {})) {
    const tr = el("tr");
    const req = (schema.required || []).includes(name) ? " (required)" : "";
    tr.append(el("td", name + req), el("td", (prop.description || "") +
      (prop.default !== undefined && prop.default !== null ? `  [default ${JSON.stringify(prop.default)}]` : "")));
    table.append(tr);
  }
  return table;
}

async function main() {
  // the curl example names this server (its real host and port), and the token header when it needs one
  document.getElementById("origin").textContent = location.origin;
  const box = document.getElementById("endpoints");
  const form = document.getElementById("token-form");
  const token = localStorage.getItem("zturbo-token");
  const res = await fetch("/openapi.json", { headers: token ? { Authorization: "Bearer " + token } : {} });
  if (res.status === 401) {
    document.getElementById("auth").hidden = false;
    form.hidden = false;
    box.textContent = token ? "That token was refused: paste the one the server was started with."
      : "This server needs a token (started with --token).";
    box.className = "error";
    document.getElementById("token").focus();
    return;
  }
  if (!res.ok) { box.textContent = `/openapi.json: HTTP ${res.status}`; return; }
  form.hidden = true;
  box.className = "";
  if (token) document.getElementById("auth").hidden = false;
  const spec = await res.json();
  box.replaceChildren();
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const div = el("div", undefined, "endpoint");
      const h = el("h3");
      h.append(el("span", method.toUpperCase(), "method"), document.createTextNode(path));
      div.append(h, el("p", op.summary || ""));
      const body = op.requestBody && op.requestBody.content["application/json"];
      if (body) div.append(schemaRows(spec, body.schema));
      const params = (op.parameters || []).map((p) => p.name + " (" + p.in + ")").join(", ");
      if (params) div.append(el("p", "parameters: " + params, "muted"));
      box.append(div);
    }
  }
}

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("zturbo-token", document.getElementById("token").value.trim());
  main();
});

main();
