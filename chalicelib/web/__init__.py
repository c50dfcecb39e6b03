"""The admin dashboard: sessions, views, Jinja2 templates and the static files the pages load."""
