"""AWS Audit Manager: assessments, their insights, control domains and tags."""
