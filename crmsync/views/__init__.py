"""The owner-facing settings pages (server-rendered, signed in through django-allauth)."""
