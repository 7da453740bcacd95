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

from chalicelib.ports.messages import SHAPES
from chalicelib.resources import (
    CONTACT_CHANGES_DEAD_LETTER_QUEUE,
    CONTACT_CHANGES_QUEUE,
    JOBS_DEAD_LETTER_QUEUE,
    JOBS_QUEUE,
    MAIN_TABLE,
    SES_EVENTS_TOPIC,
    TRACKED_CONFIGURATION_SET,
    UNTRACKED_CONFIGURATION_SET,
)
from infra.declaration import load_template, local_resources
from infra.local.provision import LOCAL_BUCKET_NAMES

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


def test_the_console_deploys_with_the_api(packaged):
    """The console is served by the same functions (chalicelib/http/routes/console.py): its files ship inside."""
    shipped = {path.name for path in (PROJECT / "chalicelib" / "console").iterdir()}
    with zipfile.ZipFile(packaged.parent / "deployment.zip") as archive:
        packaged_files = {name.rsplit("/", 1)[-1] for name in archive.namelist() if "chalicelib/console/" in name}
    assert {"index.html", "app.js", "console.css"} <= shipped == packaged_files


def test_policy_is_hand_written_and_least_privilege(template):
    config = json.loads((PROJECT / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    roles = resources_of(template, "AWS::IAM::Role")
    assert roles
    for role in roles.values():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), statement
                assert "dynamodb:Scan" not in actions, "no code path scans across tenants"
                if set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}:
                    continue  # X-Ray has no resource-level permissions
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
    failure_destinations = {"ScheduleFailuresQueue"}  # where failed scheduled invocations land: nothing consumes it
    for name, queue in queues.items():
        if name in dead_letter_ids | failure_destinations:
            continue
        props = queue["Properties"]
        assert int(props["RedrivePolicy"]["maxReceiveCount"]) >= 5, name
        assert props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in queues, name
    assert consumed, "at least one queue is consumed"


def test_secrets_live_in_secrets_manager_and_no_function_environment_holds_one(template):
    secrets = resources_of(template, "AWS::SecretsManager::Secret")
    assert set(secrets) == {"OperatorKeySecret", "SigningSecret"}
    assert all("GenerateSecretString" in s["Properties"] and "KmsKeyId" in s["Properties"] for s in secrets.values())
    assert "OperatorKey" not in template["Parameters"] and "SigningSecret" not in template["Parameters"]
    for name, function in resources_of(template, "AWS::Serverless::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert "SEGMENTS_OPERATOR_KEY" not in variables and "SEGMENTS_SECRET" not in variables, name
        assert variables["SEGMENTS_OPERATOR_KEY_SECRET_ARN"] == {"Ref": "OperatorKeySecret"}, name
        assert variables["SEGMENTS_SECRET_ARN"] == {"Ref": "SigningSecret"}, name
        assert variables["SEGMENTS_STAGE"] == "prod", name
        assert function["Properties"]["Tracing"] == "Active", name


def test_every_dead_letter_queue_and_failed_job_raises_an_alarm_on_the_output_topic(template):
    queues = resources_of(template, "AWS::SQS::Queue")
    dead_letters = {
        name for name, queue in queues.items()
        if any(q["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn", {}).get("Fn::GetAtt", [None])[0]
               == name for q in queues.values())
    } | {"ScheduleFailuresQueue"}  # fmt: skip
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    watched = {d["Value"]["Fn::GetAtt"][0] for a in alarms for d in a["Properties"].get("Dimensions", [])
               if d["Name"] == "QueueName"}  # fmt: skip
    assert dead_letters and dead_letters <= watched
    assert any(a["Properties"]["MetricName"] == "JobsFailed" for a in alarms)
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert all("KmsMasterKeyId" in t["Properties"] for t in resources_of(template, "AWS::SNS::Topic").values())


def test_sqs_consumers_have_a_maximum_concurrency_and_schedules_a_failure_destination(app, template):
    functions = resources_of(template, "AWS::Serverless::Function")
    for name, function in functions.items():
        events = function["Properties"].get("Events", {}).values()
        for event in events:
            if event["Type"] == "SQS":
                assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] >= 2, name
            if event["Type"] == "Schedule":
                assert function["Properties"]["DeadLetterQueue"]["TargetArn"] == {
                    "Fn::GetAtt": ["ScheduleFailuresQueue", "Arn"]
                }, name


def test_the_api_stage_has_access_logs_tracing_and_throttling(template):
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["TracingEnabled"] is True
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    assert (
        "$context.requestId" in api["AccessLogSetting"]["Format"]
        and "sourceIp" not in api["AccessLogSetting"]["Format"]
    )
    assert api["MethodSettings"][0]["ThrottlingRateLimit"] > 0


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
    assert subscribed <= set(SHAPES), "every consumed queue says what its messages look like"


def test_snapshots_live_in_a_private_encrypted_bucket_every_function_names(template):
    (name,) = resources_of(template, "AWS::S3::Bucket")
    bucket = template["Resources"][name]["Properties"]
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (policy,) = resources_of(template, "AWS::S3::BucketPolicy").values()
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for function_name, function in resources_of(template, "AWS::Serverless::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["SEGMENTS_SNAPSHOT_BUCKET"] == {"Ref": name}, function_name
    statements = [
        statement
        for role in resources_of(template, "AWS::IAM::Role").values()
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if any(action.startswith("s3:") for action in statement["Action"])
    ]
    assert statements, "the functions may use the bucket"
    for statement in statements:
        assert sorted(statement["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
        assert statement["Resource"] == [{"Fn::Sub": f"${{{name}.Arn}}/*"}]  # its objects, nothing else


def test_tracked_and_untracked_mail_publish_every_event_to_the_ses_topic_and_only_tracked_mail_opens_and_clicks(
    template,
):
    sets = {r["Properties"]["Name"]: name for name, r in resources_of(template, "AWS::SES::ConfigurationSet").items()}
    assert set(sets) == {TRACKED_CONFIGURATION_SET, UNTRACKED_CONFIGURATION_SET}
    topics = resources_of(template, "AWS::SNS::Topic").items()
    (topic,) = [name for name, r in topics if r["Properties"]["TopicName"] == SES_EVENTS_TOPIC]
    published = {}
    for destination in resources_of(template, "AWS::SES::ConfigurationSetEventDestination").values():
        properties = destination["Properties"]
        assert properties["EventDestination"]["SnsDestination"]["TopicARN"] == {"Ref": topic}
        published[properties["ConfigurationSetName"]["Ref"]] = set(properties["EventDestination"]["MatchingEventTypes"])
    everything = {"send", "reject", "bounce", "complaint", "delivery", "open", "click"}
    everything |= {"renderingFailure", "deliveryDelay"}
    assert published == {
        sets[TRACKED_CONFIGURATION_SET]: everything,
        sets[UNTRACKED_CONFIGURATION_SET]: everything - {"open", "click"},
    }
    (sending,) = [
        statement
        for role in resources_of(template, "AWS::IAM::Role").values()
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if "ses:SendRawEmail" in statement["Action"]
    ][:1]
    named = " ".join(json.dumps(resource) for resource in sending["Resource"])
    assert all(f"configuration-set/${{{name}}}" in named for name in sets.values())


def test_the_local_runtime_makes_every_declared_bucket():
    assert local_resources(load_template()).buckets == list(LOCAL_BUCKET_NAMES)
