"""What an operator relies on in template.yaml: every route reaches real code, the data stores keep
what they are given, each function can do exactly its job and nothing more, signature checks have no
off switch, and the stack prints every URL to paste into Twilio."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from voice_webhooks.edge import routes
from voice_webhooks.runtime import endpoint_guard
from voice_webhooks.runtime.observability import MetricName
from voice_webhooks.runtime.settings import Settings
from voice_webhooks.storage.session_store import SESSION_SEQUENCE, SessionItem
from voicedev.template_resources import PROJECT_ROOT, http_api_routes, load_template, resources_of_type

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = resources_of_type("AWS::Serverless::Function")
DEPLOY_DOC = PROJECT_ROOT / "docs" / "deploy.md"

SECRET = ("secretsmanager:GetSecretValue", "Ref:AuthTokenSecretArn")
FLOW_PARAMETER = (
    "ssm:GetParameter",
    "Sub:arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${FlowConfigParameterName}",
)
TABLE = "GetAtt:EventsTable.Arn"
QUEUE = "GetAtt:RecordingsQueue.Arn"
BUCKET = "GetAtt:RecordingsBucket.Arn"
BUCKET_OBJECTS = "Sub:${RecordingsBucket.Arn}/*"
# The archiver reads the API key secret when one is configured, else the auth token secret.
DOWNLOAD_SECRET = (
    "secretsmanager:GetSecretValue",
    "If:HasRecordingDownloadSecret?Ref:RecordingDownloadSecretArn:Ref:AuthTokenSecretArn",
)

# What each function needs, and all it gets.
EXPECTED_GRANTS: dict[str, set[tuple[str, str]]] = {
    "ConnectFunction": {SECRET, FLOW_PARAMETER, ("dynamodb:PutItem", TABLE)},
    "ActionFunction": {SECRET, FLOW_PARAMETER, ("dynamodb:GetItem", TABLE), ("dynamodb:UpdateItem", TABLE)},
    "StatusFunction": {
        SECRET,
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
    },
    "RecordingFunction": {
        SECRET,
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("sqs:SendMessage", QUEUE),
    },
    # The fallback URL must keep answering when every data store is down: it touches none.
    "FallbackFunction": {SECRET},
    # HEAD needs GetObject, and ListBucket to see a 404 rather than a 403; the queue grants are its
    # event source mapping's (receive, delete), on RecordingsQueue only.
    "RecordingArchiverFunction": {
        DOWNLOAD_SECRET,
        ("s3:GetObject", BUCKET_OBJECTS),
        ("s3:PutObject", BUCKET_OBJECTS),
        ("s3:AbortMultipartUpload", BUCKET_OBJECTS),
        ("s3:ListBucket", BUCKET),
        ("dynamodb:UpdateItem", TABLE),
        ("sqs:ReceiveMessage", QUEUE),
        ("sqs:DeleteMessage", QUEUE),
        ("sqs:GetQueueAttributes", QUEUE),
    },
}
ALARMS = resources_of_type("AWS::CloudWatch::Alarm")


def _describe(value: Any) -> str:
    """A short, comparable spelling of a CloudFormation value (`Ref:X`, `GetAtt:X.Arn`, `Sub:...`)."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return f"Ref:{argument}"
        if name == "Fn::GetAtt":
            return "GetAtt:" + ".".join(argument)
        if name == "Fn::Sub" and isinstance(argument, str):
            return f"Sub:{argument}"
        if name == "Fn::If":
            condition, if_true, if_false = argument
            return f"If:{condition}?{_describe(if_true)}:{_describe(if_false)}"
    return repr(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(function: str) -> set[tuple[str, str]]:
    """Every (action, resource) pair the function's Policies allow."""
    found: set[tuple[str, str]] = set()
    for policy in FUNCTIONS[function].get("Policies", []):
        if isinstance(policy, dict) and set(policy) == {"AWSSecretsManagerGetSecretValuePolicy"}:
            found.add(
                (
                    "secretsmanager:GetSecretValue",
                    _describe(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]),
                )
            )
        elif isinstance(policy, dict) and set(policy) == {"Statement"}:
            for statement in policy["Statement"]:
                assert statement["Effect"] == "Allow", f"{function}: unexpected statement {statement}"
                for action in _as_list(statement["Action"]):
                    for resource in _as_list(statement["Resource"]):
                        found.add((action, _describe(resource)))
        else:
            pytest.fail(
                f"{function}: policy {policy!r} is not one this test can assess; list its grants here"
            )
    return found


def function_env(function: str) -> dict[str, Any]:
    """The function's environment as Lambda sees it: Globals, then the function's own variables."""
    variables = dict(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    variables.update(FUNCTIONS[function].get("Environment", {}).get("Variables", {}))
    return variables


def output_url(path: str) -> dict[str, str]:
    return {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}" + path}


# --- routes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", routes.ALL)
def test_every_route_reaches_a_function_whose_code_exists(path: str) -> None:
    # Given the template's HttpApi events
    matching = [route for route in http_api_routes() if route.path == path]

    # Then exactly one function serves the route, for every method (the function answers 405 itself)
    assert len(matching) == 1, f"{path} is routed {len(matching)} times"
    route = matching[0]
    assert route.method == "ANY"
    # And Lambda finds its handler: app.lambda_handler in the function's CodeUri
    assert route.handler == "app.lambda_handler"
    app = route.code_uri / "app.py"
    assert app.is_file(), f"{route.function}: {app.relative_to(PROJECT_ROOT)} does not exist"
    assert "def lambda_handler(" in app.read_text(encoding="utf-8")


def test_no_route_exists_beyond_the_known_webhooks() -> None:
    assert sorted(route.path for route in http_api_routes()) == sorted(routes.ALL)


def test_every_route_is_on_the_stack_http_api() -> None:
    for name, props in FUNCTIONS.items():
        for event in props.get("Events", {}).values():
            if event["Type"] == "HttpApi":
                assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}, name
    assert RESOURCES["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"


# --- data stores ----------------------------------------------------------------------------------


def test_events_table_keys_index_and_protection() -> None:
    # Given the EventsTable definition
    table = RESOURCES["EventsTable"]
    props = table["Properties"]
    attributes = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}

    # Then sessions are partitions and events are sorted by Twilio's SequenceNumber
    assert props["KeySchema"] == [
        {"AttributeName": "SessionId", "KeyType": "HASH"},
        {"AttributeName": "SequenceNumber", "KeyType": "RANGE"},
    ]
    assert attributes == {"SessionId": "S", "SequenceNumber": "N", "CallSid": "S"}
    # And the sessions of a call can be found by CallSid
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["KeySchema"] == [{"AttributeName": "CallSid", "KeyType": "HASH"}]
    # And the index shows what a listing of a call's sessions needs (and no more, so updates of
    # recordings and outcomes do not write it too)
    assert index["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["CreatedAt", "Flow", "FlowKind", "LatestStatus", "LatestSequenceNumber"],
    }
    # And items expire by the attribute the code writes
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}
    assert SessionItem.model_fields["expires_at"].alias == "ExpiresAt"
    assert SESSION_SEQUENCE == 0
    # And the data is recoverable, encrypted, billed on demand, and survives a stack deletion
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


def test_recordings_queue_has_an_encrypted_dead_letter_queue() -> None:
    queue = RESOURCES["RecordingsQueue"]["Properties"]
    dead_letters = RESOURCES["RecordingsDeadLetterQueue"]["Properties"]
    # 14 days (SQS's maximum): time to notice the alarm and replay
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 3600

    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["RecordingsDeadLetterQueue", "Arn"]
    }
    assert 1 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    for props in (queue, dead_letters):
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
    # A standard queue's messages age from their first enqueue: the DLQ must keep them at least as long.
    assert dead_letters["MessageRetentionPeriod"] >= queue["MessageRetentionPeriod"]


def queue_consumers(queue: str) -> list[str]:
    """Functions fed by the queue: SAM SQS events and explicit event source mappings."""
    arn = {"Fn::GetAtt": [queue, "Arn"]}
    consumers = [
        name
        for name, props in FUNCTIONS.items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "SQS" and event["Properties"]["Queue"] == arn
    ]
    consumers += [
        mapping["FunctionName"]["Ref"]
        for mapping in resources_of_type("AWS::Lambda::EventSourceMapping").values()
        if mapping["EventSourceArn"] == arn
    ]
    return consumers


def test_recordings_queue_visibility_is_at_least_six_times_its_consumer_timeout() -> None:
    # Given the function that consumes RecordingsQueue
    consumers = queue_consumers("RecordingsQueue")
    assert consumers == ["RecordingArchiverFunction"]
    timeout = FUNCTIONS[consumers[0]].get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"])

    # Then a message is never redelivered while a consumer may still be working on it
    visibility = RESOURCES["RecordingsQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * timeout
    assert timeout == 60


def test_the_archiver_reports_partial_batch_failures() -> None:
    # Given the archiver's event source mapping
    [mapping] = resources_of_type("AWS::Lambda::EventSourceMapping").values()

    # Then a failed message is retried alone, batches are small enough for the timeout, and the
    # number of parallel downloads is bounded
    assert mapping["FunctionName"] == {"Ref": "RecordingArchiverFunction"}
    archiver = FUNCTIONS["RecordingArchiverFunction"]
    app = PROJECT_ROOT / archiver["CodeUri"] / "app.py"
    assert archiver["Handler"] == "app.lambda_handler"
    assert "def lambda_handler(" in app.read_text(encoding="utf-8")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping["BatchSize"] <= 10
    assert mapping["ScalingConfig"]["MaximumConcurrency"] >= 2
    # And no SAM SQS event attaches AWSLambdaSQSQueueExecutionRole (its grants cover every queue)
    for name, props in FUNCTIONS.items():
        assert all(event["Type"] != "SQS" for event in props.get("Events", {}).values()), name


def test_recordings_bucket_is_private_encrypted_tls_only_and_retained() -> None:
    bucket = RESOURCES["RecordingsBucket"]
    props = bucket["Properties"]

    # Nothing in it can become public, and object ACLs are off
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # Encrypted at rest by default
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    # Survives a stack deletion
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # Refuses any request not made over TLS, on the bucket and on every object
    [policy] = resources_of_type("AWS::S3::BucketPolicy").values()
    assert policy["Bucket"] == {"Ref": "RecordingsBucket"}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "s3:*")
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["RecordingsBucket", "Arn"]},
        {"Fn::Sub": "${RecordingsBucket.Arn}/*"},
    ]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_recordings_lifecycle_is_set_by_parameters() -> None:
    # Given the bucket's only lifecycle rule
    [rule] = RESOURCES["RecordingsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    conditions = TEMPLATE["Conditions"]
    parameters = TEMPLATE["Parameters"]

    # Then interrupted multipart uploads are cleaned up whatever the retention
    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # And the transition and the expiry come from parameters, where 0 switches each off
    condition, [transition], no_value = rule["Transitions"]["Fn::If"]
    assert condition == "HasRecordingTransition" and no_value == {"Ref": "AWS::NoValue"}
    assert transition == {
        "StorageClass": {"Ref": "RecordingTransitionStorageClass"},
        "TransitionInDays": {"Ref": "RecordingTransitionDays"},
    }
    assert rule["ExpirationInDays"] == {
        "Fn::If": ["HasRecordingExpiration", {"Ref": "RecordingExpirationDays"}, {"Ref": "AWS::NoValue"}]
    }
    assert conditions["HasRecordingTransition"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "RecordingTransitionDays"}, "0"]}]
    }
    assert conditions["HasRecordingExpiration"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "RecordingExpirationDays"}, "0"]}]
    }
    # Nothing is deleted unless the operator decides so
    assert parameters["RecordingExpirationDays"]["Default"] == 0


# --- runtime --------------------------------------------------------------------------------------


def test_globals_run_python_3_13_on_arm64_with_tracing_and_powertools() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]

    assert function_globals["Runtime"] == "python3.13"
    # The Architecture parameter, arm64 unless a user or `make sam-local` on x86_64 says otherwise
    assert function_globals["Architectures"] == [{"Ref": "Architecture"}]
    architecture = TEMPLATE["Parameters"]["Architecture"]
    assert architecture["Default"] == "arm64"
    assert architecture["AllowedValues"] == ["arm64", "x86_64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "CommonLayer"}]
    variables = function_globals["Environment"]["Variables"]
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"):
        assert variables.get(name), name
    # And traces never record a handler's answer (TwiML can hold a dialled phone number)
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    # No function opts out of the shared runtime.
    for name, props in FUNCTIONS.items():
        overridden = {"Runtime", "Architectures", "Tracing", "Layers"} & set(props)
        assert not overridden, f"{name} overrides {overridden}"


def test_common_layer_is_built_by_sam_for_python_3_13_on_arm64() -> None:
    layer = RESOURCES["CommonLayer"]
    content = PROJECT_ROOT / layer["Properties"]["ContentUri"]

    # The layer is built for the functions' architecture (SAM resolves the Ref in Metadata)
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": {"Ref": "Architecture"}}
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    assert (content / "requirements.txt").is_file()
    assert (content / "voice_webhooks" / "__init__.py").is_file()


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_logs_to_a_group_with_retention(function: str) -> None:
    groups = [
        props
        for props in resources_of_type("AWS::Logs::LogGroup").values()
        if props["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]

    assert len(groups) == 1, f"{function} has {len(groups)} log groups"
    assert groups[0]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_environment_variable_is_one_the_code_reads() -> None:
    # A misspelt name would leave a setting at its default without any error.
    known = {field.alias for field in Settings.model_fields.values()}
    known.add(endpoint_guard.VARIABLE)  # boto3 reads it; endpoint_guard refuses a non-local one
    for function in FUNCTIONS:
        for name in function_env(function):
            assert name in known or name.startswith("POWERTOOLS_"), f"{function}: unknown variable {name}"


def test_sam_local_parameters_reach_the_functions_as_plain_refs() -> None:
    # `sam local` blanks an environment variable whose value is an Fn::If (it does not evaluate
    # Conditions), so PublicBaseUrl never reached the functions under start-api: plain Refs
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["PUBLIC_BASE_URL"] == {"Ref": "PublicBaseUrl"}
    assert variables["AWS_ENDPOINT_URL"] == {"Ref": "LocalAwsEndpoint"}
    # And both are empty in a deployed stack unless set
    assert TEMPLATE["Parameters"]["PublicBaseUrl"]["Default"] == ""
    assert TEMPLATE["Parameters"]["LocalAwsEndpoint"]["Default"] == ""


@pytest.mark.parametrize(
    "value",
    [
        "",
        "http://127.0.0.1:5005",
        "http://172.31.250.1:33433",
        "http://localhost:4566",
        "http://10.0.0.5:80/",
    ],
)
def test_local_aws_endpoint_accepts_loopback_and_bridge_addresses(value: str) -> None:
    pattern = TEMPLATE["Parameters"]["LocalAwsEndpoint"]["AllowedPattern"]

    # Given a development endpoint, Then the template and the functions both accept it
    assert re.fullmatch(pattern, value), value
    assert endpoint_guard.check_endpoint_url({"AWS_ENDPOINT_URL": value}) == (value or None)


@pytest.mark.parametrize(
    "value",
    [
        "https://dynamodb.us-east-1.amazonaws.com",
        "http://example.com:5005",
        "http://8.8.8.8:5005",
        "http://172.32.0.1:5005",
        "http://127.0.0.1:5005/path",
        "http://127.0.0.1.example.com:5005",
    ],
)
def test_local_aws_endpoint_refuses_any_other_host(value: str) -> None:
    pattern = TEMPLATE["Parameters"]["LocalAwsEndpoint"]["AllowedPattern"]

    # Given an endpoint that is not loopback or a private bridge, Then the template refuses it
    assert not re.fullmatch(pattern, value), value
    # And the functions refuse it too (a stack deployed around the pattern still sends nothing)
    with pytest.raises(endpoint_guard.EndpointNotAllowed, match="LocalAwsEndpoint"):
        endpoint_guard.check_endpoint_url({"AWS_ENDPOINT_URL": value})


# --- permissions ----------------------------------------------------------------------------------


def test_every_function_has_an_expected_grant_list() -> None:
    assert set(FUNCTIONS) == set(EXPECTED_GRANTS)


@pytest.mark.parametrize("function", sorted(EXPECTED_GRANTS))
def test_each_function_is_granted_exactly_what_it_needs(function: str) -> None:
    assert grants(function) == EXPECTED_GRANTS[function]


def test_fallback_cannot_touch_the_table_and_connect_cannot_queue() -> None:
    assert not any(action.startswith("dynamodb:") for action, _ in grants("FallbackFunction"))
    assert not any(action.startswith("sqs:") for action, _ in grants("ConnectFunction"))


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_resources_a_function_may_use_are_the_ones_its_settings_name(function: str) -> None:
    # Given what the function is allowed to do
    granted = grants(function)
    env = function_env(function)

    # Then it is told where those resources are, and is not told about others
    uses_table = any(resource == TABLE for _, resource in granted)
    assert (env.get("EVENTS_TABLE_NAME") == {"Ref": "EventsTable"}) is uses_table
    sends_to_queue = ("sqs:SendMessage", QUEUE) in granted
    assert (env.get("RECORDINGS_QUEUE_URL") == {"Ref": "RecordingsQueue"}) is sends_to_queue
    uses_bucket = any(resource in (BUCKET, BUCKET_OBJECTS) for _, resource in granted)
    assert (env.get("RECORDINGS_BUCKET_NAME") == {"Ref": "RecordingsBucket"}) is uses_bucket
    reads_flow_config = FLOW_PARAMETER in granted
    assert (env.get("FLOW_CONFIG") == {"Fn::Sub": "ssm:${FlowConfigParameterName}"}) is reads_flow_config


def test_no_policy_uses_a_wildcard() -> None:
    # (beyond "every object of the stack's own bucket")
    for function in FUNCTIONS:
        for action, resource in grants(function):
            assert "*" not in action, (function, action)
            assert "*" not in resource.removesuffix("/*") and resource != "*", (function, resource)


# --- signature checks -----------------------------------------------------------------------------


def test_signature_checks_cannot_be_switched_off() -> None:
    # Given the parameters an operator sets at deploy time
    parameters = TEMPLATE["Parameters"]

    # Then the auth token secret and the accepted accounts have no default and accept only real values
    secret = parameters["AuthTokenSecretArn"]
    assert "Default" not in secret
    assert re.fullmatch(
        secret["AllowedPattern"], "arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbCdEf"
    )
    # (a partial ARN, without Secrets Manager's suffix, would match no IAM grant: refused up front)
    for refused in ("", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:twilio/token", "twilio/token"):
        assert not re.fullmatch(secret["AllowedPattern"], refused), refused
    accounts = parameters["AllowedAccountSids"]
    assert accounts["Type"] == "CommaDelimitedList"
    assert "Default" not in accounts
    for value in ("", "*", "AC123"):
        assert not re.fullmatch(accounts["AllowedPattern"], value), value

    # And every function receives both, unconditionally, and cannot override them
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["TWILIO_AUTH_TOKEN_SECRET"] == {"Ref": "AuthTokenSecretArn"}
    assert variables["ALLOWED_ACCOUNT_SIDS"] == {"Fn::Join": [",", {"Ref": "AllowedAccountSids"}]}
    for name, props in FUNCTIONS.items():
        own = set(props.get("Environment", {}).get("Variables", {}))
        assert not own & {"TWILIO_AUTH_TOKEN_SECRET", "ALLOWED_ACCOUNT_SIDS"}, name


def test_public_base_url_accepts_only_https_without_query() -> None:
    pattern = TEMPLATE["Parameters"]["PublicBaseUrl"]["AllowedPattern"]

    for accepted in ("", "https://voice.example.com", "https://example.com/twilio"):
        assert re.fullmatch(pattern, accepted), accepted
    for refused in ("http://voice.example.com", "https://x.example.com/?a=1", "https://x.example.com/#rc=3"):
        assert not re.fullmatch(pattern, refused), refused


def test_connection_overrides_must_be_a_fragment_body() -> None:
    parameter = TEMPLATE["Parameters"]["CallbackConnectionOverrides"]
    pattern = parameter["AllowedPattern"]

    assert re.fullmatch(pattern, parameter["Default"])
    for accepted in ("", "rc=3", "ct=2000&rt=12000&rc=5&rp=ct,rt,5xx"):
        assert re.fullmatch(pattern, accepted), accepted
    for refused in ("#rc=3", "rc=3&", "rc=3 rp=all", "?rc=3"):
        assert not re.fullmatch(pattern, refused), refused


# --- the archiver's settings -------------------------------------------------------------------------


def test_media_origins_accept_https_origins_only() -> None:
    parameter = TEMPLATE["Parameters"]["RecordingMediaOrigins"]
    pattern = parameter["AllowedPattern"]

    assert parameter["Type"] == "CommaDelimitedList"
    assert parameter["Default"] == "https://api.twilio.com"
    for accepted in ("https://api.twilio.com", "https://*.twilio.com", "https://media.example.com:8443"):
        assert re.fullmatch(pattern, accepted), accepted
    for refused in ("http://api.twilio.com", "https://api.twilio.com/x", "*", "https://", "api.twilio.com"):
        assert not re.fullmatch(pattern, refused), refused
    assert function_env("RecordingArchiverFunction")["RECORDING_MEDIA_ORIGINS"] == {
        "Fn::Join": [",", {"Ref": "RecordingMediaOrigins"}]
    }


def test_deleting_from_twilio_is_off_unless_chosen() -> None:
    parameter = TEMPLATE["Parameters"]["DeleteRecordingsFromTwilio"]
    env = function_env("RecordingArchiverFunction")

    assert parameter["Default"] == "false"
    assert parameter["AllowedValues"] == ["false", "true"]
    assert env["DELETE_RECORDINGS_AFTER_ARCHIVE"] == {"Ref": "DeleteRecordingsFromTwilio"}
    assert env["RECORDING_FORMAT"] == {"Ref": "RecordingFormat"}


def test_the_download_secret_is_optional_and_a_complete_arn() -> None:
    pattern = TEMPLATE["Parameters"]["RecordingDownloadSecretArn"]["AllowedPattern"]

    for accepted in ("", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf"):
        assert re.fullmatch(pattern, accepted), accepted
    assert not re.fullmatch(pattern, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k")
    assert function_env("RecordingArchiverFunction")["RECORDING_DOWNLOAD_SECRET"] == {
        "Fn::If": [
            "HasRecordingDownloadSecret",
            {"Ref": "RecordingDownloadSecretArn"},
            {"Ref": "AWS::NoValue"},
        ]
    }


# --- alarms ---------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_optional_topic() -> None:
    # Given the alarms the operations guide documents
    documented = (PROJECT_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    expected = {
        "RecordingsDeadLetterQueueAlarm",
        "RecordingsBacklogAlarm",
        "FunctionErrorsAlarm",
        "FunctionThrottlesAlarm",
        "Api5xxRateAlarm",
        "RejectedSignatureAlarm",
    }

    # Then they all exist, each is explained in the guide, and each notifies the topic when one is given
    assert set(ALARMS) == expected
    topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in ALARMS.items():
        assert f"### {name}" in documented, f"docs/operations.md does not explain {name}"
        assert alarm["AlarmActions"] == topic, name
        assert alarm["OKActions"] == topic, name
        assert alarm["TreatMissingData"] == "notBreaching", name
    assert TEMPLATE["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }


def _metric(alarm: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    return alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]


def test_the_dead_letter_queue_alarm_fires_on_its_first_message() -> None:
    alarm = ALARMS["RecordingsDeadLetterQueueAlarm"]

    assert _metric(alarm) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["RecordingsDeadLetterQueue", "QueueName"]}}],
    )
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_the_backlog_alarm_watches_the_age_of_the_oldest_queued_recording() -> None:
    alarm = ALARMS["RecordingsBacklogAlarm"]

    assert _metric(alarm) == (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["RecordingsQueue", "QueueName"]}}],
    )
    assert alarm["Threshold"] == {"Ref": "RecordingBacklogAlarmSeconds"}
    # Normally archived within seconds; the default leaves room for a few retries
    assert TEMPLATE["Parameters"]["RecordingBacklogAlarmSeconds"]["Default"] >= 360


@pytest.mark.parametrize(
    ("alarm", "metric"), [("FunctionErrorsAlarm", "Errors"), ("FunctionThrottlesAlarm", "Throttles")]
)
def test_error_and_throttle_alarms_cover_every_function(alarm: str, metric: str) -> None:
    # Given the alarm's metric math
    queries = ALARMS[alarm]["Metrics"]
    [total] = [query for query in queries if query.get("ReturnData")]
    stats = [query["MetricStat"] for query in queries if "MetricStat" in query]

    # Then it sums the metric of every function of the template, none missing, none foreign
    assert total["Expression"] == "SUM(METRICS())"
    covered = set()
    for stat in stats:
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"]) == (
            "AWS/Lambda",
            metric,
            "Sum",
        )
        [dimension] = stat["Metric"]["Dimensions"]
        assert dimension["Name"] == "FunctionName"
        covered.add(dimension["Value"]["Ref"])
    assert covered == set(FUNCTIONS)
    assert len(stats) == len(FUNCTIONS)


def test_the_api_5xx_alarm_is_a_rate_of_the_stack_api() -> None:
    alarm = ALARMS["Api5xxRateAlarm"]
    queries = {query["Id"]: query for query in alarm["Metrics"]}

    assert queries["rate"]["Expression"] == "IF(requests >= 10, 100 * errors / requests, 0)"
    for query_id, metric in (("errors", "5xx"), ("requests", "Count")):
        stat = queries[query_id]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "AWS/ApiGateway",
            "MetricName": metric,
            "Dimensions": [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}],
        }
    assert alarm["Threshold"] == {"Ref": "Api5xxRateAlarmPercent"}


def test_the_rejected_signature_alarm_reads_the_metric_the_code_emits() -> None:
    # Given the alarm and the Powertools settings every function runs with
    alarm = ALARMS["RejectedSignatureAlarm"]
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    # Then it watches the namespace, service dimension and name the signature check counts under
    assert _metric(alarm) == (
        variables["POWERTOOLS_METRICS_NAMESPACE"],
        MetricName.REJECTED_SIGNATURE,
        [{"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}],
    )
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == {"Ref": "RejectedSignatureAlarmThreshold"}


# --- outputs and documentation --------------------------------------------------------------------


@pytest.mark.parametrize("path", routes.ALL)
def test_outputs_print_every_webhook_url(path: str) -> None:
    values = [output["Value"] for output in TEMPLATE["Outputs"].values()]

    assert output_url(path) in values


def test_the_two_urls_pasted_into_the_console_keep_their_names() -> None:
    outputs = TEMPLATE["Outputs"]

    assert outputs["ConnectUrl"]["Value"] == output_url(routes.CONNECT)
    assert outputs["FallbackUrl"]["Value"] == output_url(routes.FALLBACK)


def _documented_names(doc: Path) -> set[str]:
    return set(re.findall(r"^\|\s*`(\w+)`", doc.read_text(encoding="utf-8"), flags=re.MULTILINE))


def test_deploy_guide_documents_every_parameter_and_output() -> None:
    # Given the tables of docs/deploy.md (rows starting with a `Name`)
    documented = _documented_names(DEPLOY_DOC)

    # Then every parameter and every output has a row
    missing = (set(TEMPLATE["Parameters"]) | set(TEMPLATE["Outputs"])) - documented
    assert not missing, f"docs/deploy.md does not document {sorted(missing)}"
