"""The Developer Center's web UI: server-rendered pages over the admin API's objects."""

from segue.devcenter.web.app import WebUI

__all__ = ["WebUI"]
