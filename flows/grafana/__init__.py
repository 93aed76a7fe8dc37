"""Grafana provisioning built from code: dashboards, alert rules and the `provision` command.

The builder is plain dictionaries shaped like Grafana's own JSON (no dashboards-as-code
library): every panel's SQL comes from `flows.reports.queries`, and the generated files under
`dashboards/provisioning/` are what Grafana loads. It lives in the package, not in `dashboards/`,
because `slawatch provision` pushes the same objects to a hosted Grafana.
"""
