"""Segments: the Chalice application. It only wires blueprints together."""

import os

from chalice import Chalice

from chalicelib import tracing  # noqa: F401  (patches boto3 for X-Ray when deployed)
from chalicelib.config import get_config
from chalicelib.handlers import contact_changes, schedules, sends
from chalicelib.handlers import jobs as job_handlers
from chalicelib.handlers import journeys as journey_handlers
from chalicelib.handlers import triggers as trigger_handlers
from chalicelib.handlers import webhooks as webhook_handlers
from chalicelib.http.envelope import envelope_middleware
from chalicelib.http.routes import (
    account,
    campaigns,
    console,
    contacts,
    engagements,
    groups,
    jobs,
    journeys,
    mailbox,
    meta,
    portal,
    segments,
    suppressions,
    tags,
    tenants,
    triggers,
    webhooks,
)

if not os.environ.get("AWS_CHALICE_CLI_MODE"):  # packaging imports the app without secrets
    get_config()  # a cold start fails fast on an insecure production configuration

app = Chalice(app_name="segments")
app.register_middleware(envelope_middleware, "http")
for module in (
    meta,
    tenants,
    account,
    contacts,
    tags,
    groups,
    segments,
    campaigns,
    triggers,
    suppressions,
    engagements,
    portal,
    jobs,
    mailbox,
    console,
    webhooks,
    journeys,
    job_handlers,
    contact_changes,
    sends,
    trigger_handlers,
    schedules,
    webhook_handlers,
    journey_handlers,
):
    app.register_blueprint(module.blueprint)
