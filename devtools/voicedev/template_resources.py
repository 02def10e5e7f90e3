"""Read template.yaml and create its table and queues (and later its bucket) in a moto endpoint,
from the template's own definitions: the key schema, indexes and redrive policy exist once, in the
template. Also lists the template's HttpApi routes for the local mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return dict(yaml.load(handle, Loader=_CfnLoader))  # noqa: S506 - SafeLoader subclass


def resources_of_type(
    resource_type: str, template: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    template = template or load_template()
    return {
        name: resource.get("Properties", {})
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


@dataclass(frozen=True)
class Route:
    path: str
    method: str
    function: str
    code_uri: Path
    handler: str


def http_api_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi event of every function, as the local mode must route it."""
    template = template or load_template()
    routes = []
    for name, props in resources_of_type("AWS::Serverless::Function", template).items():
        for event in props.get("Events", {}).values():
            if event.get("Type") != "HttpApi":
                continue
            routes.append(
                Route(
                    path=event["Properties"]["Path"],
                    method=event["Properties"].get("Method", "ANY").upper(),
                    function=name,
                    code_uri=PROJECT_ROOT / props["CodeUri"],
                    handler=props["Handler"],
                )
            )
    return routes


def _table_request(name: str, props: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return request


def create_table(dynamodb_client: Any, logical_id: str = "EventsTable", table_name: str | None = None) -> str:
    """Create the template's table (key schema, GSIs, TTL) and return its name."""
    props = resources_of_type("AWS::DynamoDB::Table")[logical_id]
    name = table_name or logical_id
    dynamodb_client.create_table(**_table_request(name, props))
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb_client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return name


def _queue_attributes(props: dict[str, Any], arns: dict[str, str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key in (
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
    ):
        if key in props:
            attributes[key] = str(props[key])
    redrive = props.get("RedrivePolicy")
    if redrive:
        target = redrive["deadLetterTargetArn"]
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            target = arns[target["Fn::GetAtt"][0]]
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": target, "maxReceiveCount": int(redrive["maxReceiveCount"])}
        )
    return attributes


def create_queues(sqs_client: Any) -> dict[str, str]:
    """Create every queue of the template (dead-letter queues first); returns logical id -> URL."""
    queues = resources_of_type("AWS::SQS::Queue")
    ordered = sorted(queues, key=lambda name: "RedrivePolicy" in queues[name])
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    for name in ordered:
        url = sqs_client.create_queue(QueueName=name, Attributes=_queue_attributes(queues[name], arns))[
            "QueueUrl"
        ]
        urls[name] = url
        arns[name] = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    return urls


def create_buckets(s3_client: Any) -> dict[str, str]:
    """Create every bucket of the template; returns logical id -> bucket name."""
    names: dict[str, str] = {}
    for name in resources_of_type("AWS::S3::Bucket"):
        bucket = name.lower()
        s3_client.create_bucket(Bucket=bucket)
        names[name] = bucket
    return names
