"""The Chalice app: registers blueprints and handlers; no logic lives here."""

from chalice.app import Chalice

from chalicelib.api.devices import devices_api
from chalicelib.api.openapi import openapi_api
from chalicelib.api.telemetry import telemetry_api

app = Chalice(app_name="iotcloud")
app.register_blueprint(devices_api)
app.register_blueprint(telemetry_api)
app.register_blueprint(openapi_api)
