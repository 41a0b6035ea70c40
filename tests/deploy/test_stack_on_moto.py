"""deploy/template.yaml created on moto's CloudFormation (server mode), after translating it
from SAM locally as AWS would: the queues with their redrive policies, the sender Lambda and
its event source mappings, the services, the alarms and the dashboard, as boto3 finds them.

moto creates every resource type of the template but those in ``MOTO_CANNOT_CREATE``. The
stack is therefore given the parameters of existing endpoints (a database URL secret and a
Redis host), so that no RDS instance, ElastiCache group or Secrets Manager secret is created
(RDS alone moto could create, but its password comes from a generated secret), and the alarms
are taken out of the template and put through moto's CloudWatch API with the template's own
properties, resolved against the created stack. moto's ECS services, made by CloudFormation,
also drop their LoadBalancers, so that link is read from the template. The Lambda's code is a
placeholder zip in moto's S3, where `sam deploy` would upload the real one: moto stores it and
never runs it.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.cloudformation.parsing import resource_class_from_type

from adapters.cli import _WORKERS
from adapters.config import Settings
from tests.support.cloudformation import Resolver, load_template, translate
from tests.support.moto import CREDENTIALS, REGION, moto_server

MOTO_CANNOT_CREATE = {
    "AWS::CloudWatch::Alarm",
    "AWS::SecretsManager::Secret",
    "AWS::ElastiCache::SubnetGroup",
    "AWS::ElastiCache::ReplicationGroup",
}
REFERENCE_METRICS = {
    "onlyfans.message.queued",
    "onlyfans.message.processed",
    "onlyfans.message.failed",
    "onlyfans.queue.depth",
    "onlyfans.dlq.count",
    "onlyfans.processing.time",
    "onlyfans.bulk.campaign",
    "onlyfans.bulk.recipients",
}
BUCKET, KEY = "sam-artifacts", "fancrm-sender-lambda.zip"


@dataclass
class Stack:
    aws: dict[str, Any]  # boto3 client keyword arguments: moto's endpoint and credentials
    outputs: dict[str, str]
    resources: dict[str, str]  # logical id -> physical id

    def client(self, service: str) -> Any:
        return boto3.client(service, **self.aws)


def placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "placeholder for moto: the real zip is `crm package lambda`")
    return buffer.getvalue()


def parameters(aws: dict[str, Any]) -> dict[str, str]:
    """Existing secrets, VPC and subnets made on moto, and existing endpoints."""
    secrets = boto3.client("secretsmanager", **aws)
    arn = {
        name: secrets.create_secret(Name=f"fancrm/{name}", SecretString="placeholder")["ARN"]
        for name in ("master-key", "onlyfans-api-key", "database-url")
    }
    ec2 = boto3.client("ec2", **aws)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")[
            "Subnet"
        ]["SubnetId"]
        for i, az in enumerate("abab")
    ]
    return {
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fancrm:test",
        "VpcId": vpc,
        "PrivateSubnetIds": ",".join(subnets[:2]),
        "PublicSubnetIds": ",".join(subnets[2:]),
        "MasterKeySecretArn": arn["master-key"],
        "OnlyFansApiKeySecretArn": arn["onlyfans-api-key"],
        "OnlyFansApiUrl": "https://onlyfans-provider.example",
        "ExistingDatabaseUrlSecretArn": arn["database-url"],
        "ExistingRedisEndpoint": "redis.example.internal:6379",
    }


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    template = load_template()
    with moto_server() as endpoint:
        aws = {"endpoint_url": endpoint, "region_name": REGION, **CREDENTIALS}
        s3 = boto3.client("s3", **aws)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=placeholder_zip())
        given = parameters(aws)
        cloudformation = translate(template, code_uri=f"s3://{BUCKET}/{KEY}")
        alarms = {
            logical_id: resource
            for logical_id, resource in cloudformation["Resources"].items()
            if resource["Type"] == "AWS::CloudWatch::Alarm"
        }
        for logical_id in alarms:
            del cloudformation["Resources"][logical_id]
        cfn = boto3.client("cloudformation", **aws)
        cfn.create_stack(
            StackName="fancrm",
            TemplateBody=json.dumps(cloudformation),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
        [described] = cfn.describe_stacks(StackName="fancrm")["Stacks"]
        assert described["StackStatus"] == "CREATE_COMPLETE", described
        resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cfn.list_stack_resources(StackName="fancrm")["StackResourceSummaries"]
            if r["LogicalResourceId"]
        }
        resolve = Resolver(template, given, resources)
        cloudwatch = boto3.client("cloudwatch", **aws)
        for resource in alarms.values():
            cloudwatch.put_metric_alarm(**resolve(resource["Properties"]))
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        yield Stack(aws, outputs, resources)


def test_moto_creates_every_resource_type_of_the_template_but_the_listed_ones() -> None:
    cloudformation = translate(load_template(), code_uri=f"s3://{BUCKET}/{KEY}")
    types = {resource["Type"] for resource in cloudformation["Resources"].values()}
    missing = {kind for kind in types if resource_class_from_type(kind) is None}
    assert missing == MOTO_CANNOT_CREATE


def test_each_queue_dead_letters_after_fancrms_default_receive_count(stack: Stack) -> None:
    sqs = stack.client("sqs")
    default = Settings.from_env({"DATABASE_URL": "postgresql://x/y"}).max_receive_count
    for queue, dlq, name in (
        ("NormalQueue", "NormalDeadLetterQueue", "huntaze-rate-limiter-queue"),
        ("HighQueue", "HighDeadLetterQueue", "huntaze-rate-limiter-high-queue"),
    ):
        url, dlq_url = stack.resources[queue], stack.resources[dlq]
        assert url.endswith(f"/{name}")
        assert dlq_url.endswith(f"/{name}-dlq")
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        dead = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
        policy = json.loads(attributes["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == dead["QueueArn"]
        assert int(policy["maxReceiveCount"]) == default == 4
        assert attributes["VisibilityTimeout"] == "180"  # six times the Lambda's 30 s
        assert "RedrivePolicy" not in dead
        assert dead["MessageRetentionPeriod"] == str(14 * 24 * 3600)


def test_the_sender_lambda_takes_both_queues_in_batches_of_ten_reporting_item_failures(
    stack: Stack,
) -> None:
    awslambda = stack.client("lambda")
    function = awslambda.get_function(FunctionName="huntaze-rate-limiter")["Configuration"]
    assert function["Handler"] == "worker.sender.lambda_handler"
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["x86_64"]
    variables = function["Environment"]["Variables"]
    assert variables["SQS_RATE_LIMITER_QUEUE_URL"] == stack.resources["NormalQueue"]
    assert variables["SQS_RATE_LIMITER_DLQ_URL"] == stack.resources["NormalDeadLetterQueue"]
    assert variables["SQS_RATE_LIMITER_HIGH_QUEUE_URL"] == stack.resources["HighQueue"]
    assert variables["SQS_RATE_LIMITER_HIGH_DLQ_URL"] == stack.resources["HighDeadLetterQueue"]
    assert variables["REDIS_ENDPOINT"] == "redis.example.internal:6379"
    assert variables["REDIS_TLS"] == "true"
    assert variables["CLOUDWATCH_NAMESPACE"] == "Huntaze/OnlyFans"
    assert variables["RATE_LIMITER_ENABLED"] == "true"
    assert "AWS_REGION" not in variables  # reserved: Lambda sets it
    sqs = stack.client("sqs")
    queue_arns = {
        sqs.get_queue_attributes(QueueUrl=stack.resources[q], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        for q in ("NormalQueue", "HighQueue")
    }
    mappings = awslambda.list_event_source_mappings(FunctionName="huntaze-rate-limiter")[
        "EventSourceMappings"
    ]
    assert {m["EventSourceArn"] for m in mappings} == queue_arns
    for mapping in mappings:
        assert mapping["BatchSize"] == 10
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # RateLimitPerSecond 5 and SendingAccounts 10: 10 accounts x ceil((9 + 5 x 2) / 10).
        assert mapping["ScalingConfig"] == {"MaximumConcurrency": 20}


def test_a_schedule_invokes_the_sender_to_sweep_its_dead_letter_queues(stack: Stack) -> None:
    events = stack.client("events")
    function = stack.client("lambda").get_function(FunctionName="huntaze-rate-limiter")
    arn = function["Configuration"]["FunctionArn"]
    rules = [
        rule
        for rule in events.list_rules()["Rules"]
        if any(t["Arn"] == arn for t in events.list_targets_by_rule(Rule=rule["Name"])["Targets"])
    ]
    assert [rule["ScheduleExpression"] for rule in rules] == ["rate(5 minutes)"]


def test_the_alarms_watch_the_references_three_symptoms_at_its_thresholds(stack: Stack) -> None:
    alarms = {
        a["AlarmName"]: a for a in stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    }
    assert set(alarms) == {"huntaze-queue-depth", "huntaze-dlq-count", "huntaze-db-latency"}

    def watched(alarm: dict[str, Any]) -> set[str]:
        return {
            d["Value"]
            for query in alarm["Metrics"]
            if "MetricStat" in query
            for d in query["MetricStat"]["Metric"]["Dimensions"]
        }

    depth, dlq, latency = (
        alarms[f"huntaze-{name}"] for name in ("queue-depth", "dlq-count", "db-latency")
    )
    assert (depth["ComparisonOperator"], depth["Threshold"]) == ("GreaterThanThreshold", 1000)
    assert watched(depth) == {"huntaze-rate-limiter-queue", "huntaze-rate-limiter-high-queue"}
    assert (dlq["ComparisonOperator"], dlq["Threshold"]) == ("GreaterThanThreshold", 10)
    assert watched(dlq) == {
        "huntaze-rate-limiter-queue-dlq",
        "huntaze-rate-limiter-high-queue-dlq",
    }
    for alarm in (depth, dlq):
        stats = [q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q]
        assert {(m["Namespace"], m["MetricName"]) for m in stats} == {
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        }
    assert (latency["ComparisonOperator"], latency["Threshold"]) == ("GreaterThanThreshold", 100)
    assert (latency["Namespace"], latency["MetricName"]) == (
        "Huntaze/OnlyFans",
        "onlyfans.db.latency",
    )
    # No dimensions: the aggregate every process's EMF lines carry (adapters/metrics_emf.py).
    assert latency.get("Dimensions", []) == []


def test_the_dashboard_shows_the_references_eight_metrics_under_its_namespace(
    stack: Stack,
) -> None:
    body = json.loads(
        stack.client("cloudwatch").get_dashboard(DashboardName="huntaze-onlyfans")["DashboardBody"]
    )
    shown = {
        line[1]
        for widget in body["widgets"]
        for line in widget["properties"]["metrics"]
        if line[0] == "Huntaze/OnlyFans"
    }
    assert shown >= REFERENCE_METRICS
    assert shown - REFERENCE_METRICS == {"onlyfans.db.latency"}


def test_the_api_and_every_worker_run_from_the_one_image_as_crm_commands(stack: Stack) -> None:
    ecs = stack.client("ecs")
    cluster = stack.outputs["ClusterName"]
    arns = ecs.list_services(cluster=cluster)["serviceArns"]
    services = ecs.describe_services(cluster=cluster, services=arns)["services"]
    commands = {}
    for service in services:
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
        [app] = [c for c in definition["taskDefinition"]["containerDefinitions"] if c["essential"]]
        assert app["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/fancrm:test"
        commands[service["serviceName"]] = app["command"]
    # The sender is the Lambda; every other worker the CLI knows runs as a service.
    assert commands == {
        "api": ["crm", "serve", "--port", "8000"],
        **{kind: ["crm", "worker", kind] for kind in _WORKERS if kind != "sender"},
    }
    migrate = ecs.describe_task_definition(taskDefinition=stack.outputs["MigrateTaskDefinitionArn"])
    [container] = migrate["taskDefinition"]["containerDefinitions"]
    assert container["command"] == ["crm", "migrate"]


def test_the_churn_worker_gets_its_retrain_interval_and_room_to_fit_a_model(stack: Stack) -> None:
    ecs = stack.client("ecs")
    cluster = stack.outputs["ClusterName"]
    [service] = ecs.describe_services(cluster=cluster, services=["churn"])["services"]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    [app] = task["containerDefinitions"]
    environment = {pair["name"]: pair["value"] for pair in app["environment"]}
    assert environment["CRM_CHURN_RETRAIN_SECONDS"] == "86400"
    # A fit at 100,000 fans peaks near 520 MB (README): more than the other workers' 512.
    assert int(task["memory"]) >= 2048


def test_only_the_api_is_behind_the_load_balancer_checked_on_its_health_route(
    stack: Stack,
) -> None:
    # moto's ECS service drops LoadBalancers when CloudFormation creates it (a TODO in moto):
    # which service is balanced is read from the template, the target group from moto.
    resources = load_template()["Resources"]
    balanced = {
        logical_id: resource["Properties"]["LoadBalancers"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::ECS::Service" and "LoadBalancers" in resource["Properties"]
    }
    assert list(balanced) == ["ApiService"]
    [target] = balanced["ApiService"]
    assert (target["ContainerName"], target["ContainerPort"]) == ("api", 8000)
    assert target["TargetGroupArn"] == {"Ref": "ApiTargetGroup"}
    [group] = stack.client("elbv2").describe_target_groups(
        TargetGroupArns=[stack.resources["ApiTargetGroup"]]
    )["TargetGroups"]
    assert (group["HealthCheckPath"], group["Port"], group["TargetType"]) == ("/health", 8000, "ip")
    [listener] = stack.client("elbv2").describe_listeners(
        LoadBalancerArn=stack.resources["LoadBalancer"]
    )["Listeners"]
    [action] = listener["DefaultActions"]
    assert action["TargetGroupArn"] == stack.resources["ApiTargetGroup"]
