"""Segments: the Chalice application. It only wires blueprints together."""

from chalice import Chalice

from chalicelib.config import get_config
from chalicelib.http.envelope import envelope_middleware
from chalicelib.http.routes import account, meta, tenants

get_config()  # fail fast on an insecure production configuration

app = Chalice(app_name="segments")
app.register_middleware(envelope_middleware, "http")
for module in (meta, tenants, account):
    app.register_blueprint(module.blueprint)
