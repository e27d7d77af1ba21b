"""Chains the stages that sit in different packages: training then processing (`train`), a sweep's table with
each run's best epoch (`sweep`), `bespoke runs` (`runs`), generating then processing (`generate`).

run/ never imports review/ (the arrows of the package tree point down the pipeline); what needs both lives here.
"""
