"""Assessment tags as Prometheus labels: the label an allow-listed tag key becomes, sanitised the way
kube-state-metrics sanitises Kubernetes labels (`tag_` prefix, every character outside [a-zA-Z0-9_] as `_`)."""

from __future__ import annotations

import re

PREFIX = "tag_"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str) -> str:
    """The label a tag key is published under: `cost-center` becomes `tag_cost_center`."""
    return PREFIX + _INVALID.sub("_", key)
