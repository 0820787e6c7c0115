"""Telecare device monitoring backend: one import namespace.

The concept folders stay at the top of the checkout and are linked in here (telecare/ingest ->
../ingest), so `telecare.ingest` is the same module in the checkout and in the wheel. Imports
flow one way (tests/unit/test_import_rules.py holds the rule): core -> protocol, db, mqtt ->
devices, alarms, operator_queue -> alerts, ingest, simulators -> api -> telecare.cli/service."""
