"""deploy/template.yaml for tests: read as CloudFormation reads it, translated from SAM into
plain CloudFormation locally (aws-sam-translator, what `sam deploy` asks AWS to run), and the
few intrinsic functions the alarms use resolved against a created stack."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import decode_str
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from tests.support.moto import CREDENTIALS, REGION

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"


def load_template() -> dict[str, Any]:
    """The template as a plain dict, short-form tags (!Ref, !Sub...) turned into their long
    form by cfn-lint's decoder, which reads YAML as CloudFormation does."""
    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems, problems
    return json.loads(json.dumps(template))


def translate(template: dict[str, Any], *, code_uri: str) -> dict[str, Any]:
    """SAM -> CloudFormation. ``code_uri`` (s3://bucket/key) stands where `sam deploy` puts the
    zip it uploaded; the translator needs a region, never an account or the network."""
    sam = copy.deepcopy(template)
    sam["Resources"]["SenderFunction"]["Properties"]["CodeUri"] = code_uri
    session = boto3.Session(region_name=REGION, **CREDENTIALS)
    translator = Translator(None, Parser(), boto_session=session)
    # An empty managed-policy map: no resource names an AWS managed policy (each role is the
    # template's own), and asking IAM for the map would need an account.
    return dict(translator.translate(sam, parameter_values={}, get_managed_policy_map=dict))


class Resolver:
    """Resolves Ref, Fn::GetAtt (a queue's QueueName), Fn::Sub and Fn::If against a created
    stack: enough for the alarms, which moto's CloudFormation does not create."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        physical_ids: dict[str, str],
    ) -> None:
        self.parameters = {
            name: str(parameters.get(name, spec.get("Default", "")))
            for name, spec in template["Parameters"].items()
        }
        self.physical_ids = physical_ids
        self.conditions = {
            "HasAlarmTopic": bool(self.parameters["AlarmTopicArn"]),
        }

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in map(self, value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self._ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            assert attribute == "QueueName", attribute
            return self.physical_ids[logical_id].rsplit("/", 1)[1]
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]
            for name, resolved in self.parameters.items():
                text = text.replace("${" + name + "}", resolved)
            assert "${" not in text, text
            return text
        if set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return self(when_true if self.conditions[condition] else when_false)
        return {key: v for key, v in ((k, self(v)) for k, v in value.items()) if v is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_ids[name]


_NO_VALUE = object()
