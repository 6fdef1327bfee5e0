"""Grafana dashboards as code (grafana-foundation-sdk), their generated JSON and provisioning.

`queries.py` holds every query; `operations.py` and `carbon_accounts.py` build the two
dashboards; `python -m dashboards.generate` (`make dashboards`) writes `json/`.
"""
