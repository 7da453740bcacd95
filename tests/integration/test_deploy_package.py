"""`chalice package` + the merge template give a deployable, least-privilege stack."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from chalice.app import SQSEventConfig

from chalicelib.resources import (
    CONTACT_CHANGES_DEAD_LETTER_QUEUE,
    CONTACT_CHANGES_QUEUE,
    JOBS_DEAD_LETTER_QUEUE,
    JOBS_QUEUE,
    MAIN_TABLE,
)
from infra.declaration import load_template, local_resources

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_ENDPOINT_URL", None)
    subprocess.run(
        [str(BIN / "chalice"), "package", "--stage", "prod", "--merge-template", "infra/template.json", str(out)],
        cwd=PROJECT,
        env=env,
        check=True,
        capture_output=True,
    )
    return out / "sam.json"


@pytest.fixture(scope="module")
def template(packaged):
    return json.loads(packaged.read_text())


def resources_of(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_packaged_template_passes_cfn_lint(packaged):
    result = subprocess.run([str(BIN / "cfn-lint"), str(packaged)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_zip_holds_every_runtime_dependency(packaged):
    """`chalice package` only warns when a wheel has no Lambda-compatible build
    (numpy >= 2.3 has no manylinux2014 wheel): the stack would deploy and fail on import."""
    requirements = (PROJECT / "requirements.txt").read_text().splitlines()
    distributions = [re.split(r"[=<>\[ ]", line)[0] for line in requirements if line and not line.startswith("#")]
    with zipfile.ZipFile(packaged.parent / "deployment.zip") as archive:
        folders = {name.split("/")[0].lower() for name in archive.namelist()}
    for distribution in distributions:
        stem = distribution.lower().replace("-", "_")
        assert any(folder.startswith(f"{stem}-") and folder.endswith(".dist-info") for folder in folders), distribution


def test_policy_is_hand_written_and_least_privilege(template):
    config = json.loads((PROJECT / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    roles = resources_of(template, "AWS::IAM::Role")
    assert roles
    for role in roles.values():
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), statement
                assert "dynamodb:Scan" not in actions, "no code path scans across tenants"
                assert statement["Resource"] != "*", statement


def test_every_sqs_event_source_reports_batch_item_failures(app, template):
    functions = resources_of(template, "AWS::Serverless::Function")
    sqs_events = [
        (name, event)
        for name, function in functions.items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    ]
    assert len(sqs_events) == sum(isinstance(s, SQSEventConfig) for s in app.event_sources)
    for name, event in sqs_events:
        assert event["Properties"].get("FunctionResponseTypes") == ["ReportBatchItemFailures"], name


def test_queues_have_dlq_redrive_and_long_enough_visibility(template):
    queues = resources_of(template, "AWS::SQS::Queue")
    by_name = {q["Properties"]["QueueName"]: logical_id for logical_id, q in queues.items()}
    dead_letter_ids = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    consumed = set()
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            queue_id = by_name[event["Properties"]["Queue"]["Fn::Sub"].rsplit(":", 1)[1]]
            consumed.add(queue_id)
            timeout = function["Properties"]["Timeout"]
            assert int(queues[queue_id]["Properties"]["VisibilityTimeout"]) >= 6 * timeout, (name, queue_id)
            assert queue_id in function.get("DependsOn", []), f"{name} must wait for {queue_id}"
    for name, queue in queues.items():
        if name in dead_letter_ids:
            continue
        props = queue["Properties"]
        assert int(props["RedrivePolicy"]["maxReceiveCount"]) >= 5, name
        assert props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in queues, name
    assert consumed, "at least one queue is consumed"


def test_secrets_come_from_no_echo_parameters(template):
    parameters = template["Parameters"]
    assert parameters["OperatorKey"]["NoEcho"] and parameters["SigningSecret"]["NoEcho"]
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["SEGMENTS_OPERATOR_KEY"] == {"Ref": "OperatorKey"}, name
        assert variables["SEGMENTS_SECRET"] == {"Ref": "SigningSecret"}, name
        assert variables["SEGMENTS_STAGE"] == "prod", name


def test_unknown_routes_answer_with_the_json_envelope(template):
    responses = resources_of(template, "AWS::ApiGateway::GatewayResponse")
    by_type = {r["Properties"]["ResponseType"]: r["Properties"] for r in responses.values()}
    assert by_type["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    for props in by_type.values():
        assert '"error"' in props["ResponseTemplates"]["application/json"]


def test_code_and_declaration_name_the_same_resources(app):
    declaration = local_resources(load_template())
    assert [t.properties["TableName"] for t in declaration.tables] == [MAIN_TABLE]
    declared = {queue.name for queue in declaration.queues}
    assert {JOBS_QUEUE, JOBS_DEAD_LETTER_QUEUE, CONTACT_CHANGES_QUEUE, CONTACT_CHANGES_DEAD_LETTER_QUEUE} <= declared
    subscribed = {s.queue for s in app.event_sources if isinstance(s, SQSEventConfig)}
    assert subscribed <= declared
