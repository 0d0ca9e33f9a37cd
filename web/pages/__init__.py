"""The web page: server-rendered views for a moderator, signed in with an operator key.

Served by ``picnix serve`` beside the API and built on the same reads (``web.queries``) and the
same publishing paths (uploads, lifecycle events), so a page never shows or does what the API
would not.
"""
