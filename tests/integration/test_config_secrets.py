"""Deployed functions read the operator key and the signing secret from Secrets Manager (their ARNs are in the
environment, never the values)."""

import boto3

from chalicelib.config import get_config


def test_the_secrets_come_from_secrets_manager_when_the_environment_names_them(monkeypatch):
    secrets = boto3.client("secretsmanager")
    operator = secrets.create_secret(Name="test/operator-key", SecretString="a-deployed-operator-key")["ARN"]
    signing = secrets.create_secret(Name="test/signing-secret", SecretString="a-deployed-signing-secret")["ARN"]
    for name in ("SEGMENTS_OPERATOR_KEY", "SEGMENTS_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEGMENTS_OPERATOR_KEY_SECRET_ARN", operator)
    monkeypatch.setenv("SEGMENTS_SECRET_ARN", signing)
    monkeypatch.setenv("SEGMENTS_STAGE", "prod")
    get_config.cache_clear()
    try:
        config = get_config()  # prod refuses the local defaults: these must have been read
        assert config.operator_key == "a-deployed-operator-key"
        assert config.secret == b"a-deployed-signing-secret"
    finally:
        get_config.cache_clear()
