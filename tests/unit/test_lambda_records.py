"""A Lambda record of a deferred SQS copy counts the receives its earlier copies counted, as
the SQS adapter's receive does, so the sender's last try comes no later for it."""

from __future__ import annotations

from adapters.sqs import PRIOR_RECEIVES
from worker.sender_lambda import record_from_lambda


def lambda_item(receive_count: int, **attributes: str) -> dict[str, object]:
    return {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "messageAttributes": {
            name: {"stringValue": value, "dataType": "String"} for name, value in attributes.items()
        },
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fancrm-high",
    }


def test_a_deferred_copy_adds_the_receives_it_carries_and_hides_the_attribute() -> None:
    record = record_from_lambda(lambda_item(1, **{PRIOR_RECEIVES: "2", "traceparent": "00-a"}))
    assert (record.receive_count, record.queue) == (3, "high")
    assert record.attributes == {"traceparent": "00-a"}


def test_a_message_never_deferred_counts_its_own_receives() -> None:
    record = record_from_lambda(lambda_item(2))
    assert (record.receive_count, record.attributes) == (2, {})


def test_with_queue_urls_configured_the_high_queue_is_the_one_its_url_names() -> None:
    item = {
        **lambda_item(1),
        "eventSourceARN": "arn:aws:sqs:eu-west-1:1:huntaze-rate-limiter-queue",
    }
    assert record_from_lambda(item, "huntaze-rate-limiter-queue").queue == "high"
    assert record_from_lambda(item, "huntaze-priority").queue == "normal"
    assert record_from_lambda(lambda_item(1), "huntaze-priority").queue == "normal"
