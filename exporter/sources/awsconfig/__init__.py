"""AWS Config: conformance packs, their scores and rule compliance, and configuration aggregators."""
