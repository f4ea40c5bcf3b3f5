"""The AWS Security Hub CSPM source: the security score of each enabled standard, its controls' status and its
failed findings by severity, from one pass over the account's control findings per cycle."""
