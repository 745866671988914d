// segue Developer Center, app pages: the settings builder (keys from labels, add/remove
// rows, live preview), the endpoint/function switch, and Send Test Event's samples.
// The pages work without it: the server generates keys and renders the same forms.
"use strict";

(function () {
  // mirrors segue.destinations.settings.key_from_label
  function keyFromLabel(label) {
    const words = label.match(/[A-Za-z0-9]+/g);
    if (!words) return "";
    const key = words[0].toLowerCase() +
      words.slice(1).map((w) => w.slice(0, 1).toUpperCase() + w.slice(1).toLowerCase()).join("");
    return /^[0-9]/.test(key) ? "_" + key : key;
  }
  window.segueKeyFromLabel = keyFromLabel;

  // -- the settings builder -----------------------------------------------------
  const form = document.getElementById("app-form");
  const rows = document.getElementById("setting-rows");
  const template = document.getElementById("setting-row-template");
  const preview = document.getElementById("settings-preview");

  function field(label, type, required, description) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const id = "preview-" + Math.random().toString(36).slice(2, 9);
    const lab = document.createElement("label");
    lab.htmlFor = id;
    lab.textContent = label;
    if (required) {
      const mark = document.createElement("abbr");
      mark.title = "required";
      mark.className = "req";
      mark.textContent = "*";
      lab.append(" ", mark);
    }
    const input = document.createElement("input");
    input.id = id;
    input.type = type;
    input.disabled = true;
    if (type === "password") input.placeholder = "••••••";
    wrap.append(lab, input);
    if (description) {
      const help = document.createElement("p");
      help.className = "help";
      help.textContent = description;
      wrap.append(help);
    }
    return wrap;
  }

  function renderPreview() {
    if (!preview || !rows) return;
    const items = [];
    let customApiKey = false;
    rows.querySelectorAll("[data-row]").forEach((row) => {
      const label = row.querySelector("[data-label]").value.trim();
      if (!label) return;
      const key = row.querySelector("[data-key]").value.trim() || keyFromLabel(label);
      const sensitive = row.querySelector("[data-sensitive]").checked || key === "apiKey";
      if (key === "apiKey") customApiKey = true;
      items.push(field(label, sensitive ? "password" : "text",
        row.querySelector("[data-required]").checked,
        row.querySelector("[data-description]").value.trim()));
    });
    if (!customApiKey) items.unshift(field(preview.dataset.apiLabel || "API Key", "password", false, ""));
    preview.replaceChildren(...items);
  }

  function renumber() {
    rows.querySelectorAll("[data-row]").forEach((row, index) => {
      row.querySelectorAll("[id], [name], [for]").forEach((el) => {
        for (const attr of ["id", "name", "for"]) {
          const value = el.getAttribute(attr);
          if (value) el.setAttribute(attr, value.replace(/^setting-\d+-/, `setting-${index}-`));
        }
      });
      const legend = row.querySelector("legend");
      if (legend) legend.textContent = `Setting ${index + 1}`;
      const hidden = row.querySelector("[data-remove-row] .visually-hidden");
      if (hidden) hidden.textContent = ` setting ${index + 1}`;
    });
  }

  function wire(row) {
    const remove = row.querySelector("[data-remove-row]");
    if (remove) remove.hidden = false;
  }

  if (form && rows && template) {
    rows.querySelectorAll("[data-row]").forEach(wire);
    const add = form.querySelector("[data-add-row]");
    add.type = "button"; // with the script, rows are added here (Enter submits the form)
    add.addEventListener("click", () => {
      const row = template.content.firstElementChild.cloneNode(true);
      rows.append(row);
      wire(row);
      renumber();
      row.querySelector("[data-label]").focus();
      renderPreview();
    });
    rows.addEventListener("click", (event) => {
      const button = event.target.closest("[data-remove-row]");
      if (!button) return;
      const row = button.closest("[data-row]");
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumber();
      renderPreview();
      (next ? next.querySelector("[data-label]") : add).focus();
    });
    rows.addEventListener("input", (event) => {
      const target = event.target;
      const row = target.closest("[data-row]");
      if (!row) return;
      if (target.matches("[data-key]")) {
        target.dataset.edited = target.value.trim() ? "true" : "";
      } else if (target.matches("[data-label]")) {
        const key = row.querySelector("[data-key]");
        if (!key.dataset.edited) key.value = keyFromLabel(target.value);
      }
      renderPreview();
    });
    rows.addEventListener("change", renderPreview);
    renderPreview();
  }

  // -- endpoint or function -------------------------------------------------------
  const kind = document.querySelector("[data-kind]");
  function showKind() {
    const chosen = kind.querySelector("input:checked");
    document.querySelectorAll("[data-kind-panel]").forEach((panel) => {
      panel.hidden = chosen && panel.dataset.kindPanel !== chosen.value;
    });
  }
  if (kind) {
    kind.addEventListener("change", showKind);
    showKind();
  }
  const runtime = document.querySelector("[data-runtime]");
  const code = document.getElementById("code");
  if (runtime && code) {
    runtime.addEventListener("change", () => {
      const before = code.dataset.language;
      const starters = [code.dataset.starterPython, code.dataset.starterJavascript].map((s) => (s || "").trim());
      if (!code.value.trim() || starters.includes(code.value.trim())) {
        code.value = code.dataset["starter" + runtime.value.charAt(0).toUpperCase() + runtime.value.slice(1)] || "";
      }
      if (window.segueEditor) window.segueEditor.setLanguage(code, runtime.value);
      else code.dataset.language = runtime.value || before;
    });
  }

  // -- Send Test Event: swap the sample when the type changes ------------------------
  const select = document.querySelector("[data-sample-select]");
  const eventInput = document.getElementById("event");
  if (select && eventInput) {
    let shown = select.value;
    let edited = false;
    eventInput.addEventListener("input", () => { edited = true; });
    select.addEventListener("change", () => {
      if (edited && !window.confirm("Replace your edited event with the sample?")) {
        select.value = shown;
        return;
      }
      eventInput.value = select.selectedOptions[0].dataset.sample;
      shown = select.value;
      edited = false;
    });
  }
})();
