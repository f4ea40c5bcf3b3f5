"""The AWS services the exporter reads, one package each: client, plan, poll, snapshot part, metrics, status."""
