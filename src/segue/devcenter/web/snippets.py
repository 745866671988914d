"""The "Send events here" snippets of a source's page, filled in for this segue.

They load nothing from Segment: analytics.js fetches its settings from segue
(``/v1/projects/{writeKey}/settings``) and, when the npm package is installed beside
segue, the library too (docs/tracking-api.md, "analytics.js in a browser").
"""

from __future__ import annotations

import orjson

_LOADER = """<script>
(function () {
  var segue = %(url)s;
  var writeKey = %(key)s;
  var analytics = (window.analytics = window.analytics || []);
  if (analytics.invoked) return;
  analytics.invoked = true;
  ["identify", "track", "page", "screen", "group", "alias", "ready", "reset",
   "trackLink", "trackForm", "on", "once", "off", "setAnonymousId",
   "addSourceMiddleware", "register", "debug"].forEach(function (method) {
    analytics[method] = function () {
      analytics.push([method].concat(Array.prototype.slice.call(arguments)));
      return analytics;
    };
  });
  analytics.load = function (key, options) {
    var script = document.createElement("script");
    script.async = true;
    script.src = segue + "/analytics.js/v1/" + key + "/analytics.min.js";
    document.head.appendChild(script);
    analytics._loadOptions = options;
  };
  analytics._writeKey = writeKey;
  analytics._cdn = segue;  // settings and later code come from segue, not a CDN
  analytics.load(writeKey);
  analytics.page();
})();
</script>
"""

_NPM = """// npm install @segment/analytics-next, then bundle it with your app:
import { AnalyticsBrowser } from "@segment/analytics-next";

export const analytics = AnalyticsBrowser.load({
  writeKey: %(key)s,
  cdnURL: %(url)s,  // the settings come from segue
});
"""

_PYTHON = """# pip install segment-analytics-python
import segment.analytics as analytics

analytics.write_key = %(key)s
analytics.host = %(url)s

analytics.track("user-123", "Signed Up", {"plan": "pro"})
analytics.flush()
"""


def snippets(write_key: str, url: str) -> dict[str, str]:
    """analytics.js (a ``<script>`` that loads it from segue), the npm package, Python."""
    values = {"key": _js(write_key), "url": _js(url)}
    return {
        "analytics_js": _LOADER % values,
        "analytics_next": _NPM % values,
        "python": _PYTHON % values,
    }


def _js(value: str) -> str:
    """A JSON string literal (also valid JavaScript and Python), safe inside <script>."""
    return orjson.dumps(value).decode().replace("</", "<\\/")
