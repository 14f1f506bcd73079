"""The web layer: auth, one error mapping, the JSON API, admin pages, inbound hooks,
public pages, unsubscribe, health and metrics."""
