"""SnapStart in the template: one parameter turns it on, and everything that invokes a function
invokes its `live` alias (SnapStart restores published versions only, never $LATEST). Checked on
the template as AWS SAM translates it (the aws-sam-translator that cfn-lint brings)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
from voicedev.template_resources import TEMPLATE, resources_of_type

FUNCTION_COUNT = len(resources_of_type("AWS::Serverless::Function"))

PARAMETERS = {
    "AuthTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:twilio-AbCdEf",
    "AllowedAccountSids": "AC" + "0" * 32,
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
}


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def translated(layer_key: str = "layer.zip", **parameters: str) -> dict[str, Any]:
    """template.yaml as CloudFormation, after `sam package` (code in S3) and the SAM transform."""
    template = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if "CodeUri" in properties:
            properties["CodeUri"] = f"s3://artifacts/{name}.zip"
        if "ContentUri" in properties:
            properties["ContentUri"] = f"s3://artifacts/{layer_key}"
    return dict(transform(template, {**PARAMETERS, **parameters}, _NoManagedPolicies()))


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator asks boto3 for one


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def test_snapstart_is_one_parameter_off_by_default() -> None:
    # Given the template
    template = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    # Then SnapStart is a parameter, false unless asked for
    assert template["Parameters"]["SnapStart"]["Default"] == "false"
    assert template["Parameters"]["SnapStart"]["AllowedValues"] == ["false", "true"]
    # And every function, as translated, applies it to published versions when it is true
    functions = of_type(translated(SnapStart="true"), "AWS::Lambda::Function")
    assert len(functions) == FUNCTION_COUNT
    for properties in (res["Properties"] for res in functions.values()):
        assert properties["SnapStart"] == {
            "ApplyOn": {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}
        }
        assert properties["Runtime"] == "python3.13"  # SnapStart: Python 3.12 and later
    assert translated()["Conditions"]["UseSnapStart"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "true"]}


def test_api_gateway_and_the_queue_invoke_the_live_alias() -> None:
    # Given the translated template
    template = translated(SnapStart="true")
    aliases = of_type(template, "AWS::Lambda::Alias")
    assert {res["Properties"]["Name"] for res in aliases.values()} == {"live"}
    assert len(aliases) == FUNCTION_COUNT
    # Then every HttpApi route's integration calls an alias, and API Gateway may invoke the alias
    (http_api,) = [
        res for res in of_type(template, "AWS::ApiGatewayV2::Api").values() if "Body" in res["Properties"]
    ]
    paths = http_api["Properties"]["Body"]["paths"]
    assert len(paths) == 5
    for route in paths.values():
        uri = route["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        target = uri.split("functions/${", 1)[1].split("}", 1)[0]
        assert target in aliases, uri
    # And so does every route of the relay's WebSocket API ($connect, $default, $disconnect)
    integrations = of_type(template, "AWS::ApiGatewayV2::Integration")
    assert len(integrations) == 3
    for res in integrations.values():
        uri, variables = res["Properties"]["IntegrationUri"]["Fn::Sub"]
        assert uri.endswith(":lambda:path/2015-03-31/functions/${Alias}/invocations"), uri
        assert variables["Alias"]["Ref"] in aliases, variables
    # And API Gateway may invoke the aliases only (every permission, HTTP and WebSocket alike)
    permissions = of_type(template, "AWS::Lambda::Permission")
    assert len(permissions) == len(paths) + len(integrations)
    for res in permissions.values():
        assert res["Properties"]["FunctionName"]["Ref"] in aliases, res
    # And the archiver's queue mapping invokes its alias too
    [mapping] = of_type(template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionName"] == {"Ref": "RecordingArchiverFunctionAliaslive"}


def test_a_new_layer_publishes_a_new_version_of_every_function() -> None:
    # Given two deployments that differ in the layer only
    before = of_type(translated(layer_key="layer-1.zip"), "AWS::Lambda::Version")
    after = of_type(translated(layer_key="layer-2.zip"), "AWS::Lambda::Version")
    # Then every function gets a new version (the alias, and its snapshot, never keep an old layer)
    assert len(before) == len(after) == FUNCTION_COUNT
    assert not set(before) & set(after), json.dumps(sorted(before))
    # and the replaced ones are deleted (each one kept would be a snapshot billed for caching)
    assert {res.get("DeletionPolicy") for res in after.values()} == {"Delete"}
