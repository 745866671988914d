// segue code editor: a <textarea> with a syntax-highlighting overlay (Python, JavaScript).
// The textarea stays the real, accessible input (its text is transparent, the caret is
// not); a <pre aria-hidden> behind it shows the same text, coloured. Tab inserts spaces,
// Shift+Tab removes them; Esc then Tab leaves the editor (keyboard users are never trapped).
"use strict";

(function () {
  const KEYWORDS = {
    python: new Set(("False None True and as assert async await break class continue def del elif else " +
      "except finally for from global if import in is lambda nonlocal not or pass raise return try " +
      "while with yield match case print self").split(" ")),
    javascript: new Set(("async await break case catch class const continue debugger default delete do " +
      "else export extends false finally for function if import in instanceof let new null of return " +
      "static super switch this throw true try typeof undefined var void while with yield console").split(" ")),
  };
  // one regex per language: comment | string | number | word | anything else
  const TOKENS = {
    python: /(#[^\n]*)|("""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|[rbfu]{0,2}"(?:\\.|[^"\\\n])*"?|[rbfu]{0,2}'(?:\\.|[^'\\\n])*'?)|(\b(?:0[xob][0-9a-f_]+|\d[\d_]*(?:\.\d*)?(?:e[+-]?\d+)?j?)\b)|([A-Za-z_][A-Za-z0-9_]*)|([\s\S])/gi,
    javascript: /(\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$))|(`(?:\\[\s\S]|[^`\\])*`?|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?)|(\b(?:0[xob][0-9a-f_]+|\d[\d_]*(?:\.\d*)?(?:e[+-]?\d+)?n?)\b)|([A-Za-z_$][A-Za-z0-9_$]*)|([\s\S])/gi,
  };
  const INDENT = { python: "    ", javascript: "  " };

  function highlight(code, language) {
    const fragment = document.createDocumentFragment();
    const regex = TOKENS[language] || TOKENS.python;
    const keywords = KEYWORDS[language] || KEYWORDS.python;
    regex.lastIndex = 0;
    let plain = "";
    const flush = () => { if (plain) { fragment.append(plain); plain = ""; } };
    const span = (cls, text) => {
      flush();
      const el = document.createElement("span");
      el.className = cls;
      el.textContent = text;
      fragment.append(el);
    };
    let match;
    while ((match = regex.exec(code)) !== null) {
      if (match[0] === "") { regex.lastIndex += 1; continue; }
      if (match[1]) span("tok-comment", match[1]);
      else if (match[2]) span("tok-string", match[2]);
      else if (match[3]) span("tok-number", match[3]);
      else if (match[4]) {
        if (keywords.has(match[4])) span("tok-keyword", match[4]);
        else if (code[regex.lastIndex] === "(") span("tok-call", match[4]);
        else plain += match[4];
      } else plain += match[0];
    }
    flush();
    fragment.append("\n"); // keeps the last line's height when the text ends with a newline
    return fragment;
  }

  function attach(box) {
    const input = box.querySelector("textarea");
    if (!input || box.dataset.ready) return;
    box.dataset.ready = "true";
    const pre = document.createElement("pre");
    pre.className = "editor-view";
    pre.setAttribute("aria-hidden", "true");
    const code = document.createElement("code");
    pre.append(code);
    box.prepend(pre);
    box.classList.add("enhanced");
    let escaped = false;

    const render = () => {
      code.replaceChildren(highlight(input.value, input.dataset.language));
      pre.scrollTop = input.scrollTop;
      pre.scrollLeft = input.scrollLeft;
    };
    input.addEventListener("input", render);
    input.addEventListener("scroll", () => {
      pre.scrollTop = input.scrollTop;
      pre.scrollLeft = input.scrollLeft;
    });
    input.addEventListener("keydown", (event) => {
      if (input.readOnly) return;
      if (event.key === "Escape") { escaped = true; return; }
      if (event.key !== "Tab" || escaped || event.ctrlKey || event.altKey || event.metaKey) {
        escaped = false;
        return;
      }
      event.preventDefault();
      const indent = INDENT[input.dataset.language] || "    ";
      const { selectionStart: start, selectionEnd: end, value } = input;
      const lineStart = value.lastIndexOf("\n", start - 1) + 1;
      if (event.shiftKey) {
        const line = value.slice(lineStart);
        const remove = line.startsWith(indent) ? indent.length : (line.match(/^ */)[0].length);
        if (!remove) return;
        input.setRangeText("", lineStart, lineStart + Math.min(remove, indent.length), "preserve");
      } else if (start !== end && value.slice(start, end).includes("\n")) {
        // indent every selected line
        const block = value.slice(lineStart, end);
        const indented = block.replace(/^/gm, indent);
        input.setRangeText(indented, lineStart, end, "select");
      } else {
        input.setRangeText(indent, start, end, "end");
      }
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    input.addEventListener("blur", () => { escaped = false; });
    box.segueRender = render;
    render();
  }

  function setLanguage(input, language) {
    input.dataset.language = language;
    const box = input.closest("[data-editor]");
    if (box && box.segueRender) box.segueRender();
  }

  document.querySelectorAll("[data-editor]").forEach(attach);
  window.segueEditor = { attach, setLanguage, highlight };
})();
