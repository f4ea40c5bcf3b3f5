"""Stand-ins for the AWS APIs the exporter calls, served over real HTTP for the tests, the benchmarks and `--demo`."""

from exporter.simulator.auditmanager import DEFAULT_REGION, STATUSES, UNKNOWN_OPERATION, Simulator
from exporter.simulator.demo import demo_simulator
from exporter.simulator.faults import FAULT_KINDS, Fault
from exporter.simulator.model import AccountInsights, ControlDomain, Insights, RequestRecord
from exporter.simulator.wire import ERROR_STATUS

__all__ = [
    "DEFAULT_REGION",
    "ERROR_STATUS",
    "FAULT_KINDS",
    "STATUSES",
    "UNKNOWN_OPERATION",
    "AccountInsights",
    "ControlDomain",
    "Fault",
    "Insights",
    "RequestRecord",
    "Simulator",
    "demo_simulator",
]
