"""The verification report: bench + quality results + host metadata -> report.md, report.json, plots."""

SCHEMA_VERSION = "1.0"
