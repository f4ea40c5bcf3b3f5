"""Stand-ins for the AWS APIs the exporter calls, served over real HTTP for the tests, the benchmarks and `--demo`."""

from exporter.simulator.auditmanager import DEFAULT_REGION, STATUSES, UNKNOWN_OPERATION, Simulator
from exporter.simulator.awsconfig import AwsConfig
from exporter.simulator.demo import demo_simulator
from exporter.simulator.faults import FAULT_KINDS, Fault
from exporter.simulator.model import AccountInsights, ControlDomain, Insights, RequestRecord
from exporter.simulator.securityhub import SecurityHub
from exporter.simulator.securityhub_data import FindingSet
from exporter.simulator.wire import CONFIG_ERROR_STATUS, ERROR_STATUS, SECURITYHUB_ERROR_STATUS

__all__ = [
    "CONFIG_ERROR_STATUS",
    "DEFAULT_REGION",
    "ERROR_STATUS",
    "FAULT_KINDS",
    "SECURITYHUB_ERROR_STATUS",
    "STATUSES",
    "UNKNOWN_OPERATION",
    "AccountInsights",
    "AwsConfig",
    "ControlDomain",
    "Fault",
    "FindingSet",
    "Insights",
    "RequestRecord",
    "SecurityHub",
    "Simulator",
    "demo_simulator",
]
