"""The admin and instructor console: server-rendered pages (Jinja2 + vendored htmx) under /console."""
