"""Scaling reports in pure code: what CloudWatch and Auto Scaling would do with a target's alarms.

moto stores alarms but never evaluates them, so this package does what CloudWatch and Auto
Scaling would do with the classic pair of policies (ChangeInCapacity +1 / -1, cooldown 180 s)
driven by two alarms ("Average > 70 for 2 periods of 60 s", "Average < 40 for 2 periods of
60 s"). One job per module, in the order a report runs them:

- `targets`: a stage's targets file (`targets.json`, templated with the stage) and alarm names.
- `config`: the vocabulary and the typed configuration (AlarmSpec, Policy, MetricQuery, Target).
- `periods`: raw load samples -> utilization % per aligned period (`period_stats`).
- `alarms`: one alarm evaluation, M out of N with missing-data treatment (`alarm_state`).
- `policy`: both alarms + cooldown + [min, max] clamping -> a Decision (`decide`).
- `projection`: least-squares trend of the load and when it would cross a threshold.
- `report`: the JSON body of one report run (`report_document`) and its summary lines.
- `formatting`: times and numbers as reports and CloudWatch's state reasons print them.

The adapter (`adapters.scaling`: metrics and capacities from AWS) and the job
(`jobs.scaling_report`) stay in their layers. Time is int milliseconds since the epoch, UTC,
as everywhere in the domain.
"""
