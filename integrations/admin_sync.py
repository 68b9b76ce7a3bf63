"""Admin for the sync engine tables: see the sync dashboard work."""
