"""The owner pages of lead scoring, under /a/<account_slug>/scoring/."""
