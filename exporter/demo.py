"""`--demo`: start the built-in Audit Manager, AWS Config and Security Hub simulator and the config that polls it."""

from __future__ import annotations

import logging

import boto3

from exporter.aws import SessionFactory, new_session
from exporter.config import AUDIT_MANAGER, AWS_CONFIG, SECURITY_HUB, Config, Target, parse

log = logging.getLogger("exporter")

DEMO_POLL_INTERVAL = "10s"


def demo() -> tuple[Config, SessionFactory]:
    """The demo's config and session factory, with the simulator started in this process."""
    from exporter.simulator import demo_simulator
    from exporter.simulator.demo import DEMO_AGGREGATOR, DEMO_AGGREGATOR_REGION

    simulator = demo_simulator().start()
    target = {
        "endpoint_url": simulator.url,
        "sources": [AUDIT_MANAGER, AWS_CONFIG, SECURITY_HUB],
        "discover": True,
        "control_domains": True,
        "conformance_packs": {"discover": True},
    }
    config = parse(
        {
            "poll_interval": DEMO_POLL_INTERVAL,
            "tag_labels": ["team", "cost-center"],
            # The aggregator's region polls it too, as a delegated administrator's account would.
            "targets": [
                {**target, "region": DEMO_AGGREGATOR_REGION, "aggregator": DEMO_AGGREGATOR},
                {**target, "region": "eu-west-1"},
            ],
        }
    )

    def session(target: Target) -> boto3.Session:
        return new_session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name=target.region)

    log.info(
        "demo mode: polling the built-in Audit Manager, AWS Config and Security Hub simulator",
        extra={"simulator": simulator.url},
    )
    return config, session
