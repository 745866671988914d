// segue's JavaScript prelude: the globals of Segment's function runtime (fetch, Headers, URL,
// URLSearchParams, btoa, atob, console, the error classes, timers) and `__segue`, the host interface
// js_runtime.py drives: fetches and timers wait in an outbox that the host polls and settles.
(function (g) {
  "use strict";
  const def = (name, value) => {
    const d = Object.getOwnPropertyDescriptor(g, name);
    if (d && !d.configurable) g[name] = value; // e.g. mini-racer's `var setTimeout`
    else Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
  };
  const S = { maxLog: 65536, seq: 0, inbox: { a: null } }; // the host passes data in inbox.a

  // ---- errors ---------------------------------------------------------------------
  const KINDS = ["EventNotSupported", "InvalidEventPayload", "ValidationError", "RetryError"];
  for (const name of KINDS) {
    const C = class extends Error { constructor(message) { super(message); this.name = name; } };
    Object.defineProperty(C, "name", { value: name });
    C.prototype.name = name;
    def(name, C);
  }
  class FetchError extends Error {
    constructor(message, type) { super(message); this.name = "FetchError"; this.type = type || "system"; }
  }
  def("FetchError", FetchError);
  const DOM_CODES = { InvalidCharacterError: 5, SyntaxError: 12, AbortError: 20 };
  if (typeof g.DOMException !== "function") def("DOMException", class DOMException extends Error {
    constructor(message = "", name = "Error") { super(message); Object.defineProperty(this, "name", { value: name }); }
    get code() { return DOM_CODES[this.name] || 0; }
  });

  // ---- console --------------------------------------------------------------------
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.stack || `${v.name}: ${v.message}`;
    if (typeof v === "function") return `[Function: ${v.name || "anonymous"}]`;
    if (typeof v === "bigint") return `${v}n`;
    if (v === undefined || typeof v === "symbol") return String(v);
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  };
  const format = (args) => {
    if (typeof args[0] !== "string" || args.length < 2 || !args[0].includes("%")) return args.map(show).join(" ");
    let i = 1;
    const head = args[0].replace(/%[sdifjoOc%]/g, (m) => {
      if (m === "%%" || i >= args.length) return m === "%%" ? "%" : m;
      const a = args[i++];
      if (m === "%d" || m === "%i") return typeof a === "bigint" ? `${a}n` : String(m === "%i" ? parseInt(a, 10) : Number(a));
      return m === "%f" ? String(parseFloat(a)) : m === "%c" ? "" : show(a);
    });
    return [head].concat(args.slice(i).map(show)).join(" ");
  };
  const log = (...args) => {
    if (S.logSize > S.maxLog) return;
    const line = format(args);
    S.logSize += line.length + 1;
    S.logs.push(S.logSize > S.maxLog ? line.slice(0, S.maxLog) + "\n… (log truncated)" : line);
  };
  const console = {};
  for (const m of ["log", "info", "warn", "error", "debug", "trace"]) console[m] = log;
  def("console", console);

  // ---- base64 ---------------------------------------------------------------------
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const invalidChar = () => new g.DOMException("Invalid character", "InvalidCharacterError");
  def("btoa", function btoa(data) {
    if (arguments.length === 0) throw new TypeError('The "data" argument must be specified');
    const s = String(data);
    if (/[^\x00-\xff]/.test(s)) throw invalidChar();
    let out = "";
    for (let i = 0; i < s.length; i += 3) {
      const n = (s.charCodeAt(i) << 16) | ((s.charCodeAt(i + 1) | 0) << 8) | (s.charCodeAt(i + 2) | 0);
      out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] +
        (i + 1 < s.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < s.length ? B64[n & 63] : "=");
    }
    return out;
  });
  def("atob", function atob(data) {
    if (arguments.length === 0) throw new TypeError('The "data" argument must be specified');
    let s = String(data).replace(/[\t\n\f\r ]/g, "");
    if (s.length % 4 === 0) s = s.replace(/==?$/, "");
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) throw invalidChar();
    let out = "", buf = 0, bits = 0;
    for (let i = 0; i < s.length; i++, bits += 6) {
      buf = ((buf << 6) | B64.indexOf(s[i])) & 0xffffff;
      if (bits >= 2) { bits -= 8; out += String.fromCharCode((buf >> (bits + 6)) & 255); }
    }
    return out;
  });

  // ---- URLSearchParams ------------------------------------------------------------
  const LIST = Symbol("list"), OWNER = Symbol("url"), QUERY = Symbol("query");
  const wellFormed = (s) => (typeof s.toWellFormed === "function" ? s.toWellFormed() : s);
  const hex = (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
  const formEncode = (s) =>
    encodeURIComponent(wellFormed(String(s))).replace(/%20/g, "+").replace(/[!'()~]/g, hex);
  const pctDecode = (s) => s.replace(/(%[0-9A-Fa-f]{2})+/g, (m) => { try { return decodeURIComponent(m); } catch (e) { return m; } });
  const parseForm = (s) => s.split("&").filter((p) => p !== "").map((p) => {
    const i = p.indexOf("=");
    const [k, v] = i < 0 ? [p, ""] : [p.slice(0, i), p.slice(i + 1)];
    return [pctDecode(k.replace(/\+/g, " ")), pctDecode(v.replace(/\+/g, " "))];
  });
  const pairsOf = (init) => { // null for a primitive (a query string)
    if (init == null) return [];
    if (typeof init !== "object" && typeof init !== "function") return null;
    if (typeof init[Symbol.iterator] !== "function") return Object.keys(init).map((k) => [k, String(init[k])]);
    return Array.from(init, (pair) => {
      const p = Array.from(pair);
      if (p.length !== 2) throw new TypeError("Each pair must be an iterable [name, value] tuple");
      return [String(p[0]), String(p[1])];
    });
  };
  class URLSearchParams {
    constructor(init) {
      this[OWNER] = null;
      const pairs = init instanceof URLSearchParams ? init[LIST].map((p) => [...p]) : pairsOf(init);
      this[LIST] = pairs !== null ? pairs : parseForm(String(init).replace(/^\?/, ""));
    }
    get size() { return this[LIST].length; }
    append(name, value) { this[LIST].push([String(name), String(value)]); this._sync(); }
    delete(name, value) {
      this[LIST] = this[LIST].filter(([k, v]) => k !== String(name) || (value !== undefined && v !== String(value)));
      this._sync();
    }
    get(name) { const p = this[LIST].find(([k]) => k === String(name)); return p ? p[1] : null; }
    getAll(name) { return this[LIST].filter(([k]) => k === String(name)).map(([, v]) => v); }
    has(name, value) {
      return this[LIST].some(([k, v]) => k === String(name) && (value === undefined || v === String(value)));
    }
    set(name, value) {
      name = String(name);
      const i = this[LIST].findIndex(([k]) => k === name);
      if (i < 0) this[LIST].push([name, String(value)]);
      else this[LIST] = this[LIST].filter(([k], j) => k !== name || j === i).map((p, j) => (j === i ? [name, String(value)] : p));
      this._sync();
    }
    sort() { this[LIST].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this._sync(); }
    forEach(cb, thisArg) { for (const [k, v] of this[LIST].slice()) cb.call(thisArg, v, k, this); }
    *entries() { for (const [k, v] of this[LIST].slice()) yield [k, v]; }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this[LIST].map(([k, v]) => formEncode(k) + "=" + formEncode(v)).join("&"); }
    _sync() { const u = this[OWNER]; if (u) { const s = this.toString(); u[QUERY] = s === "" ? null : s; } }
    get [Symbol.toStringTag]() { return "URLSearchParams"; }
  }
  def("URLSearchParams", URLSearchParams);

  // ---- URL --------------------------------------------------------------------------
  const PORTS = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443", "ftp:": "21" };
  const pct = (re) => (s) => wellFormed(s).replace(re, (c) => (c.length === 1 && c < "\x80" ? hex(c) : encodeURIComponent(c)));
  const encPath = pct(/[\x00-\x20"#<>?`{}\x7f]|[^\x00-\x7f]/gu);
  const encQuery = pct(/[\x00-\x20"#<>'\x7f]|[^\x00-\x7f]/gu);
  const encHash = pct(/[\x00-\x20"<>`\x7f]|[^\x00-\x7f]/gu);
  const encUser = pct(/[\x00-\x20"#<>?`{}\/:;=@[\\\]^|\x7f]|[^\x00-\x7f]/gu);
  const invalid = () => new TypeError("Invalid URL");
  const normPath = (p) => {
    const out = [], segs = p.split("/").slice(1);
    segs.forEach((s, i) => {
      const l = s.toLowerCase(), last = i === segs.length - 1;
      if (l === ".." || l === ".%2e" || l === "%2e." || l === "%2e%2e") { out.pop(); if (last) out.push(""); }
      else if (l === "." || l === "%2e") { if (last) out.push(""); }
      else out.push(s);
    });
    return "/" + out.map(encPath).join("/");
  };
  const resolve = (input, base) => {
    const b = new URL(base);
    if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(input)) return input;
    if (/^[\/\\]{2}/.test(input)) return b.protocol + input;
    if (/^[\/\\]/.test(input)) return b.origin + input;
    if (input === "" || input[0] === "#") return b.href.replace(/#.*$/, "") + input;
    if (input[0] === "?") return b.origin + b.pathname + input;
    return b.origin + b.pathname.replace(/[^\/]*$/, "") + input;
  };
  class URL {
    constructor(input, base) {
      let s = String(input).replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "").replace(/[\t\n\r]/g, "");
      if (base !== undefined) s = resolve(s, String(base));
      const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/s.exec(s);
      if (!m) throw invalid();
      this._protocol = m[1].toLowerCase() + ":";
      let rest = m[2];
      const hashAt = rest.indexOf("#"), qAt = rest.slice(0, hashAt < 0 ? undefined : hashAt).indexOf("?");
      this._hash = hashAt < 0 ? null : encHash(rest.slice(hashAt + 1));
      this[QUERY] = qAt < 0 ? null : encQuery(rest.slice(qAt + 1, hashAt < 0 ? undefined : hashAt));
      rest = rest.slice(0, qAt >= 0 ? qAt : hashAt >= 0 ? hashAt : undefined);
      this._username = this._password = this._hostname = this._port = "";
      if (this._protocol in PORTS) {
        rest = rest.replace(/\\/g, "/").replace(/^\/*/, "");
        const slash = rest.indexOf("/");
        let auth = slash < 0 ? rest : rest.slice(0, slash);
        this._pathname = normPath(slash < 0 ? "/" : rest.slice(slash));
        const at = auth.lastIndexOf("@");
        if (at >= 0) {
          const cred = auth.slice(0, at), colon = cred.indexOf(":");
          this._username = encUser(colon < 0 ? cred : cred.slice(0, colon));
          this._password = colon < 0 ? "" : encUser(cred.slice(colon + 1));
          auth = auth.slice(at + 1);
        }
        const pm = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(auth);
        if (!pm) throw invalid();
        const host = pctDecode(pm[1]).toLowerCase();
        if (host === "" || /[\x00-\x20#%\/:<>?@[\\\]^|]/.test(host.replace(/^\[[0-9a-f:.]+\]$/, "h"))) throw invalid();
        if (pm[2] && Number(pm[2]) > 65535) throw invalid();
        this._hostname = host;
        this._port = pm[2] && String(Number(pm[2])) !== PORTS[this._protocol] ? String(Number(pm[2])) : "";
        this._opaque = false;
      } else [this._pathname, this._opaque] = [encHash(rest), true];
      const params = new URLSearchParams(this[QUERY] || "");
      params[OWNER] = this;
      Object.defineProperty(this, "_params", { value: params });
      for (const k of Object.keys(this)) Object.defineProperty(this, k, { enumerable: false });
    }
    static canParse(input, base) { try { new URL(input, base); return true; } catch (e) { return false; } }
    get protocol() { return this._protocol; }
    get username() { return this._username; }
    get password() { return this._password; }
    get hostname() { return this._hostname; }
    set hostname(v) { const u = new URL(`${this._protocol}//${v}`); this._hostname = u.hostname; }
    get port() { return this._port; }
    set port(v) {
      const d = /^\d*/.exec(String(v))[0];
      if (d === "" && String(v) !== "") return;
      this._port = d === "" || String(Number(d)) === PORTS[this._protocol] ? "" : String(Number(d));
    }
    get host() { return this._hostname + (this._port ? ":" + this._port : ""); }
    set host(v) { const u = new URL(`${this._protocol}//${v}`); this._hostname = u.hostname; this._port = u.port; }
    get origin() { return this._opaque ? "null" : `${this._protocol}//${this.host}`; }
    get pathname() { return this._pathname; }
    set pathname(v) { if (!this._opaque) this._pathname = normPath("/" + String(v).replace(/^[\/\\]/, "")); }
    get search() { return this[QUERY] ? "?" + this[QUERY] : ""; }
    set search(v) { const q = encQuery(String(v).replace(/^\?/, "")); this[QUERY] = q || null; this._params[LIST] = parseForm(q); }
    get searchParams() { return this._params; }
    get hash() { return this._hash ? "#" + this._hash : ""; }
    set hash(v) { const h = encHash(String(v).replace(/^#/, "")); this._hash = h === "" ? null : h; }
    get href() {
      if (this._opaque) return this._protocol + this._pathname + this.search + this.hash;
      const cred = this._username || this._password
        ? this._username + (this._password ? ":" + this._password : "") + "@" : "";
      return `${this._protocol}//${cred}${this.host}${this._pathname}${this.search}${this.hash}`;
    }
    set href(v) {
      const u = new URL(v);
      for (const k of Object.getOwnPropertyNames(u)) if (k !== "_params") this[k] = u[k];
      this[QUERY] = u[QUERY];
      this._params[LIST] = parseForm(u[QUERY] || "");
    }
    toString() { return this.href; }
    toJSON() { return this.href; }
    get [Symbol.toStringTag]() { return "URL"; }
  }
  def("URL", URL);

  // ---- Headers, Response, fetch -----------------------------------------------------
  const MAP = Symbol("headers");
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const hname = (n) => {
    if (!TOKEN.test(String(n))) throw new TypeError(`Header name must be a valid HTTP token ["${n}"]`);
    return String(n).toLowerCase();
  };
  const hvalue = (v) => {
    v = String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (/[\0\r\n]/.test(v)) throw new TypeError(`Invalid character in header content ["${v}"]`);
    return v;
  };
  class Headers {
    constructor(init) {
      this[MAP] = new Map();
      if (init instanceof Headers) { for (const [k, vs] of init[MAP]) this[MAP].set(k, vs.slice()); return; }
      if (init != null && typeof init !== "object" && typeof init !== "function") {
        throw new TypeError("Headers init must be an object, an array of pairs or a Headers");
      }
      for (const [k, v] of pairsOf(init) || []) this.append(k, v);
    }
    append(name, value) { const k = hname(name), v = hvalue(value); const vs = this[MAP].get(k); vs ? vs.push(v) : this[MAP].set(k, [v]); }
    set(name, value) { this[MAP].set(hname(name), [hvalue(value)]); }
    get(name) { const vs = this[MAP].get(hname(name)); return vs ? vs.join(", ") : null; }
    getSetCookie() { return (this[MAP].get("set-cookie") || []).slice(); }
    has(name) { return this[MAP].has(hname(name)); }
    delete(name) { this[MAP].delete(hname(name)); }
    *entries() {
      for (const k of [...this[MAP].keys()].sort()) {
        if (k === "set-cookie") for (const v of this[MAP].get(k)) yield [k, v];
        else if (this[MAP].has(k)) yield [k, this.get(k)];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(cb, thisArg) { for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return "Headers"; }
  }
  def("Headers", Headers);

  const STATUS = { 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 413: "Payload Too Large", 422: "Unprocessable Entity",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout" };
  const BODY = Symbol("body"), USED = Symbol("used");
  class Response {
    constructor(body, init = {}) {
      [this[BODY], this[USED]] = [body == null ? "" : String(body), false];
      this.status = init.status === undefined ? 200 : init.status;
      this.statusText = init.statusText === undefined ? STATUS[this.status] || "" : String(init.statusText);
      [this.headers, this.url, this.redirected, this.type] = [new Headers(init.headers), init.url || "", false, "default"];
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    get bodyUsed() { return this[USED]; }
    text() {
      if (this[USED]) return Promise.reject(new TypeError(`body used already for: ${this.url}`));
      return Promise.resolve(((this[USED] = true), this[BODY]));
    }
    json() {
      return this.text().then((t) => { try { return JSON.parse(t); } catch (e) {
        throw new FetchError(`invalid json response body at ${this.url} reason: ${e.message}`, "invalid-json");
      } });
    }
    clone() {
      if (this[USED]) throw new TypeError("cannot clone body after it is used");
      return new Response(this[BODY], this);
    }
    get [Symbol.toStringTag]() { return "Response"; }
  }
  def("Response", Response);

  def("fetch", function fetch(input, init) {
    return new Promise((resolve, reject) => {
      init = init || {};
      const raw = input !== null && typeof input === "object" && !(input instanceof URL) && "url" in input ? input.url : input;
      let url;
      try { url = new URL(String(raw)); } catch (e) { throw new TypeError(`Only absolute URLs are supported`); }
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError("Only HTTP(S) protocols are supported");
      const method = String(init.method || (input && input.method) || "GET").toUpperCase();
      const headers = new Headers(init.headers || (input && input.headers) || undefined);
      let body = init.body == null ? null : init.body;
      if (body !== null) {
        if (method === "GET" || method === "HEAD") throw new TypeError("Request with GET/HEAD method cannot have body");
        let type = "text/plain;charset=UTF-8";
        if (body instanceof URLSearchParams) type = "application/x-www-form-urlencoded;charset=UTF-8";
        else if (typeof body === "object" && (ArrayBuffer.isView(body) || body instanceof ArrayBuffer)) {
          throw new TypeError("fetch: only text bodies are supported (use JSON.stringify)");
        }
        body = String(body);
        if (!headers.has("content-type")) headers.set("content-type", type);
      }
      const id = ++S.seq;
      S.pending.set(id, { resolve, reject });
      const timeout = Number(init.timeout) > 0 ? Number(init.timeout) / 1000 : null;
      S.outbox.push({ id, k: "fetch", req: { url: url.href, method, headers: [...headers], body, timeout } });
    });
  });

  // ---- timers (host-driven) ----------------------------------------------------------
  const addTimer = (fn, ms, args, repeat) => {
    if (typeof fn !== "function") throw new TypeError('The "callback" argument must be of type function');
    const id = ++S.seq, timer = { fn, args, ms: Math.max(0, Number(ms) || 0), repeat };
    S.timers.set(id, timer);
    S.outbox.push({ id, k: "timer", ms: timer.ms });
    return id;
  };
  const clear = (id) => { if (S.timers.delete(id)) S.cancelled.push(id); };
  def("setTimeout", (fn, ms, ...args) => addTimer(fn, ms, args, false));
  def("setInterval", (fn, ms, ...args) => addTimer(fn, ms, args, true));
  for (const name of ["clearTimeout", "clearInterval"]) def(name, clear);
  def("queueMicrotask", (fn) => { Promise.resolve().then(fn).catch((e) => fail(e)); });

  // ---- host interface ---------------------------------------------------------------
  const TYPES = { identify: "onIdentify", track: "onTrack", page: "onPage", screen: "onScreen",
    group: "onGroup", alias: "onAlias", delete: "onDelete", batch: "onBatch" };
  const fn = (n) => `typeof ${n} === "function" ? ${n} : `;
  const CAPTURE = "\n;({" + Object.entries(TYPES).map(
    ([t, on]) => `${t}: ${fn(on)}${t === "delete" ? "" : fn(t)}null`).join(", ") + "})";
  const describe = (e) => {
    if (e !== null && typeof e === "object" && "message" in e) {
      const name = String(e.name || "Error");
      return KINDS.includes(name) ? { ok: false, kind: name, message: String(e.message) }
        : { ok: false, kind: "Error", message: `${name}: ${e.message}` };
    }
    return { ok: false, kind: "Error", message: String(e) };
  };
  const fail = (e) => { if (S.outcome === null) S.outcome = JSON.stringify(describe(e)); };
  const succeed = (v) => {
    let s;
    try { s = JSON.stringify(v); } catch (e) { return fail(e); }
    if (S.outcome === null) S.outcome = '{"ok":true,"value":' + (s === undefined ? "null" : s) + "}";
  };
  const reset = () => {
    S.outbox = []; S.cancelled = []; S.logs = []; S.logSize = 0;
    S.pending = new Map(); S.timers = new Map(); S.outcome = null;
  };
  reset();
  S.load = (src, filename) => { // indirect eval: the capture sees the code's top-level bindings
    try { S.handlers = (0, eval)(src + CAPTURE + "\n//# sourceURL=" + filename); } catch (e) { return JSON.stringify(describe(e)); }
    return JSON.stringify({ ok: true, handlers: Object.keys(S.handlers).filter((k) => S.handlers[k]) });
  };
  S.poll = () => {
    const out = '{"o":' + (S.outcome === null ? "null" : S.outcome) + ',"r":' + JSON.stringify(S.outbox) +
      ',"c":' + JSON.stringify(S.cancelled) + ',"l":' + JSON.stringify(S.logs) + "}";
    S.outbox = []; S.cancelled = []; S.logs = [];
    return out;
  };
  const take = () => { const data = JSON.parse(S.inbox.a); S.inbox.a = null; return data; };
  S.start = () => {
    const [type, event, settings] = take();
    reset();
    const handler = Object.hasOwn(S.handlers, type) ? S.handlers[type] : null;
    if (!handler) {
      S.outcome = JSON.stringify({ ok: false, kind: "EventNotSupported", message: `no ${TYPES[type] || type} handler` });
      return S.poll();
    }
    try {
      const r = handler(event, settings);
      if (r !== null && (typeof r === "object" || typeof r === "function") && typeof r.then === "function") {
        Promise.resolve(r).then(succeed, fail);
      } else succeed(r);
    } catch (e) { fail(e); }
    return S.poll();
  };
  const settle = (id, r) => {
    const t = S.timers.get(id), p = S.pending.get(id);
    if (t) {
      if (t.repeat) S.outbox.push({ id, k: "timer", ms: t.ms }); else S.timers.delete(id);
      try { t.fn(...t.args); } catch (e) { fail(e); }
      return;
    }
    if (!p) return;
    S.pending.delete(id);
    if (r.error != null) p.reject(new FetchError(r.error, "system"));
    else p.resolve(new Response(r.body, { status: r.status, headers: r.headers, url: r.url }));
  };
  S.settle = () => { for (const [id, r] of take()) settle(id, r); };
  def("__segue", S);
})(globalThis);
