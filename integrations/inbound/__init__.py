"""The CRM → capsule direction: inbound webhooks and polling, echo suppression, applying CRM
changes to the prospects' personalisation data, and the personalisation API."""
