"""The domain: announcements, incidents, subscribers, ledger, audit, people and the plan.

No Flask, no HTTP and no delivery code here: the web and delivery layers call in, never
the other way round."""
