"""A benchmark harness for the exporter: poll cycles, /metrics latency, memory and idle cost, measured side by side.

Run `python -m benchmarks` (a few minutes) or `python -m benchmarks --smoke` (seconds, for CI).
"""
