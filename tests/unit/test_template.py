"""What an operator relies on in template.yaml: every route reaches real code, the data stores keep
what they are given, each function can do exactly its job and nothing more, signature checks have no
off switch, and the stack prints every URL to paste into Twilio."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from voice_webhooks.edge import routes
from voice_webhooks.relay.settings import RelaySettings
from voice_webhooks.runtime import endpoint_guard
from voice_webhooks.runtime.observability import MetricName
from voice_webhooks.storage.dynamo import SESSION_KEY, SORT
from voice_webhooks.storage.sessions import SessionItem
from voicedev.template_resources import PROJECT_ROOT, http_api_routes, load_template, resources_of_type

from tests.conftest import load_function

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
    # The session item and the action items in one BatchGetItem; each request PutItem once; the
    # identity fill UpdateItem.
    "ActionFunction": {
        SECRET,
        FLOW_PARAMETER,
        ("dynamodb:BatchGetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
    },
    # Query on the ByCallSid index only: a callback without `session` finds its call's sessions.
    "StatusFunction": {
        SECRET,
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("dynamodb:Query", "Sub:${EventsTable.Arn}/index/ByCallSid"),
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
    # Query on its sparse index only (never a scan); writes its own items, queues through the claim.
    "ReconcilerFunction": {
        SECRET,
        ("dynamodb:Query", "Sub:${EventsTable.Arn}/index/ByReconcileDue"),
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("sqs:SendMessage", QUEUE),
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
                condition = ""
                if set(statement) == {"Fn::If"}:
                    # A grant only when a parameter enables it: `If:<condition>?<resource>`.
                    name, statement, otherwise = statement["Fn::If"]
                    assert otherwise == {"Ref": "AWS::NoValue"}, f"{function}: unexpected {otherwise}"
                    condition = f"If:{name}?"
                assert statement["Effect"] == "Allow", f"{function}: unexpected statement {statement}"
                for action in _as_list(statement["Action"]):
                    for resource in _as_list(statement["Resource"]):
                        found.add((action, condition + _describe(resource)))
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
    assert re.search(r"^lambda_handler = ", app.read_text(encoding="utf-8"), re.MULTILINE)


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

    # Then sessions are partitions and every item of a session has a string key (stream prefixes)
    assert props["KeySchema"] == [
        {"AttributeName": "SessionId", "KeyType": "HASH"},
        {"AttributeName": "ItemKey", "KeyType": "RANGE"},
    ]
    assert SORT == "ItemKey"
    assert SESSION_KEY == "session"
    assert attributes == {
        "SessionId": "S",
        "ItemKey": "S",
        "SessionCallSid": "S",
        "ReconcileShard": "S",
        "ReconcileAt": "S",
    }
    indexes = {index["IndexName"]: index for index in props["GlobalSecondaryIndexes"]}
    # And the sessions of a call can be found by SessionCallSid (only on session items)
    by_call = indexes["ByCallSid"]
    assert by_call["KeySchema"] == [{"AttributeName": "SessionCallSid", "KeyType": "HASH"}]
    # showing what a listing of a call's sessions needs (and no more, so identity fills do not
    # write the index too)
    assert by_call["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": [
            "CreatedAt",
            "Flow",
            "FlowKind",
            "LatestStatus",
            "LatestSequenceNumber",
            "CallStatus",
            "CallSequenceNumber",
        ],
    }
    # And the sessions whose call has no final status yet are listed by the sparse reconcile index
    due = indexes["ByReconcileDue"]
    assert due["KeySchema"] == [
        {"AttributeName": "ReconcileShard", "KeyType": "HASH"},
        {"AttributeName": "ReconcileAt", "KeyType": "RANGE"},
    ]
    # And items expire by the attribute the code writes
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}
    assert SessionItem.model_fields["expires_at"].alias == "ExpiresAt"
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
        mapping["FunctionName"]["Ref"].removesuffix(".Alias")
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
    assert mapping["FunctionName"] == {"Ref": "RecordingArchiverFunction.Alias"}
    archiver = FUNCTIONS["RecordingArchiverFunction"]
    app = PROJECT_ROOT / archiver["CodeUri"] / "app.py"
    assert archiver["Handler"] == "app.lambda_handler"
    assert re.search(r"^lambda_handler = ", app.read_text(encoding="utf-8"), re.MULTILINE)
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


def test_no_function_opts_out_of_the_shared_runtime_or_the_log_and_trace_safeguards() -> None:
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
    # Traces never record a handler's answer (TwiML can hold a dialled phone number), and nothing
    # asks Powertools to log events (the edge refuses anyway: tests/integration/test_edge.py)
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    for name, props in FUNCTIONS.items():
        own = props.get("Environment", {}).get("Variables", {})
        assert str(own.get("POWERTOOLS_LOGGER_LOG_EVENT", "false")).lower() != "true", name
        assert str(own.get("POWERTOOLS_TRACER_CAPTURE_RESPONSE", "false")).lower() == "false", name
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


# A placeholder for each variable a function is given (the template's values are CloudFormation
# expressions); the names with a type get a value of that type.
_PLACEHOLDERS = {
    "PUBLIC_BASE_URL": "",
    "AWS_ENDPOINT_URL": "",
    "RECONCILE_GRACE_MINUTES": "15",
    "RECONCILE_MAX_SESSIONS": "200",
    "RELAY_CONNECTION_TTL_HOURS": "3",
    "EVENT_TTL_DAYS": "90",
    "PARAMETERS_MAX_AGE": "300",
    "RECORDING_FORMAT": "wav",
    "RECORDING_MEDIA_ORIGINS": "https://api.twilio.com",
    "DELETE_RECORDINGS_AFTER_ARCHIVE": "false",
    "RECORDING_DOWNLOAD_SECRET": "",
}


def settings_model_of(function: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The settings model the function's code checks at cold start, loaded with the environment
    the template gives it (so a variable the template forgot fails here, as it would in Lambda)."""
    for name in function_env(function):
        if not name.startswith("POWERTOOLS_"):
            monkeypatch.setenv(name, _PLACEHOLDERS.get(name, "placeholder"))
    module = load_function(Path(FUNCTIONS[function]["CodeUri"]).name)
    return module.lambda_handler.settings_model


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_is_given_every_setting_it_requires_and_only_those(
    function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function's environment in the template, When its code starts (no error: every
    # required variable is there), Then each variable is one that function reads: a misspelt or
    # stray name would leave a setting at its default without any error.
    known = {field.alias for field in settings_model_of(function, monkeypatch).model_fields.values()}
    for name in FUNCTIONS[function].get("Environment", {}).get("Variables", {}):
        assert name in known or name.startswith("POWERTOOLS_"), f"{function}: variable {name} is not read"


def test_every_global_variable_is_read_by_a_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # A misspelt name would leave a setting at its default without any error. (The relay's
    # settings are read by the connect, action and relay functions' shared relay module.)
    known: set[str | None] = {field.alias for field in RelaySettings.model_fields.values()}
    known.add(endpoint_guard.VARIABLE)  # boto3 reads it; endpoint_guard refuses a non-local one
    for function in FUNCTIONS:
        known |= {field.alias for field in settings_model_of(function, monkeypatch).model_fields.values()}
    for name in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]:
        assert name in known or name.startswith("POWERTOOLS_"), f"Globals: variable {name} is not read"


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

# Item-level operations only: no Scan, no table or queue administration, no deletion of data.
TABLE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
}
# The table's indexes: queried, nothing else.
INDEXES = {f"Sub:${{EventsTable.Arn}}/index/{name}" for name in ("ByCallSid", "ByReconcileDue")}
# The relay agent: post to and close this API's own connections; Bedrock only where the stack enables it.
RELAY_CONNECTIONS = (
    "Sub:arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RelayApi}/relay/"
)
BEDROCK = "If:BedrockAgentEnabled?"
SENDER_ACTIONS = {"sqs:SendMessage"}
# What Lambda's SQS event source needs from its function's role, nothing more.
CONSUMER_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
BUCKET_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_may_only_use_the_resources_its_settings_name(
    function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given what the code of the function reads from its environment
    fields = {field.alias for field in settings_model_of(function, monkeypatch).model_fields.values()}
    granted = grants(function)
    by_resource: dict[str, set[str]] = {}
    for action, resource in granted:
        by_resource.setdefault(resource, set()).add(action)

    # Then every grant is on a resource it is told about, with item-level actions only
    for resource, actions in by_resource.items():
        if resource == TABLE:
            assert "EVENTS_TABLE_NAME" in fields and actions <= TABLE_ACTIONS, (function, actions)
        elif resource == QUEUE:
            assert actions <= SENDER_ACTIONS | CONSUMER_ACTIONS, (function, actions)
            assert not actions & SENDER_ACTIONS or "RECORDINGS_QUEUE_URL" in fields, function
        elif resource in (BUCKET, BUCKET_OBJECTS):
            assert "RECORDINGS_BUCKET_NAME" in fields and actions <= BUCKET_ACTIONS, (function, actions)
        elif resource in INDEXES:
            assert "EVENTS_TABLE_NAME" in fields and actions == {"dynamodb:Query"}, (function, actions)
        elif resource.startswith(RELAY_CONNECTIONS):
            assert function == "RelayMessageFunction" and actions == {"execute-api:ManageConnections"}
            assert resource.endswith(("/POST/@connections/*", "/DELETE/@connections/*")), resource
        elif resource.startswith(BEDROCK):
            assert function == "RelayMessageFunction", function
            assert actions == {"bedrock:InvokeModelWithResponseStream"}, actions
        elif (next(iter(actions)), resource) == FLOW_PARAMETER:
            assert "FLOW_CONFIG" in fields and actions == {"ssm:GetParameter"}, function
        elif actions == {"secretsmanager:GetSecretValue"}:
            assert "AuthTokenSecretArn" in resource, (function, resource)
            assert "TWILIO_AUTH_TOKEN_SECRET" in fields, function
        else:
            pytest.fail(f"{function}: grant {actions} on {resource} is not one of the stack's resources")
    # And every resource it is told about, it may use
    env = function_env(function)
    told = {"EVENTS_TABLE_NAME": TABLE, "RECORDINGS_BUCKET_NAME": BUCKET_OBJECTS}
    for variable, resource in told.items():
        assert (variable in env) is (resource in by_resource), (function, variable)
    assert ("RECORDINGS_QUEUE_URL" in env) is ("sqs:SendMessage" in by_resource.get(QUEUE, set())), function


def test_the_fallback_touches_no_data_store_and_only_the_archiver_consumes_the_queue() -> None:
    # The fallback URL must keep answering when every data store is down
    assert {resource for _, resource in grants("FallbackFunction")} == {SECRET[1]}
    consumers = {name for name in FUNCTIONS if ("sqs:ReceiveMessage", QUEUE) in grants(name)}
    assert consumers == {"RecordingArchiverFunction"}
    for name in FUNCTIONS:
        # Nobody may delete what the archive keeps
        assert not any(action.startswith("s3:Delete") for action, _ in grants(name)), name


@pytest.mark.parametrize("kind", ["AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::S3::Bucket"])
def test_every_data_store_is_encrypted_at_rest(kind: str) -> None:
    stores = resources_of_type(kind)
    assert stores, kind
    for name, props in stores.items():
        if kind == "AWS::DynamoDB::Table":
            assert props["SSESpecification"]["SSEEnabled"] is True, name
        elif kind == "AWS::SQS::Queue":
            assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), name
        else:
            rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            assert rules and all(rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for rule in rules), (
                name
            )


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
        "RelayIntegrationErrorAlarm",
        "ReconcileRecoveredAlarm",
        "ReconcileApiFailuresAlarm",
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
