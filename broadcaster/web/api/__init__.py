"""The JSON API (flask-smorest): blueprints, one per resource."""
