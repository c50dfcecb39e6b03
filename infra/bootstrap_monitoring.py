"""Bootstrap of what the scaling reports watch: the EC2 group scenario, alarms, dashboard.

The seed chapter's AutoScaling scenario, done with boto3 as it does with boto: a launch
template, a group with min/max, scale-up and scale-down policies (ChangeInCapacity +1/-1,
cooldown 180 s) and the two CloudWatch alarms on them. Every call is an idempotent upsert
or guarded by a describe, so running bootstrap twice changes nothing the second time.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.domain.scaling.targets import alarm_name

COMPARISONS = {
    ">": "GreaterThanThreshold",
    ">=": "GreaterThanOrEqualToThreshold",
    "<": "LessThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
}
DASHBOARD_METRICS = (
    ("BatchSize", "SampleCount"),  # ingest requests
    ("ReadingsIngested", "Sum"),
    ("RejectedRequests", "Sum"),
    ("BatchSize", "Average"),
    ("IngestLatency", "p95"),
    ("ArchiveLag", "Maximum"),
    ("ActiveDevices", "Maximum"),
)


def ensure_asg(ec2: Any, autoscaling: Any, target: dict[str, Any]) -> dict[str, str]:
    """Launch template, group and its two simple-scaling policies; returns the policy ARNs."""
    spec, policy, group = target["asg"], target["policy"], target["resource"]
    templates = ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [spec["launch_template"]]}]
    )["LaunchTemplates"]
    if not templates:
        ec2.create_launch_template(
            LaunchTemplateName=spec["launch_template"],
            LaunchTemplateData={"ImageId": spec["image_id"], "InstanceType": spec["instance_type"]},
        )
    if not autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]:
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchTemplate={"LaunchTemplateName": spec["launch_template"], "Version": "$Latest"},
            MinSize=policy["min_capacity"],
            MaxSize=policy["max_capacity"],
            DesiredCapacity=spec.get("desired_capacity", policy["min_capacity"]),
            AvailabilityZones=zones,
            DefaultCooldown=policy["cooldown_s"],
        )
    arns = {}
    for direction, step in (("up", policy["step_up"]), ("down", -policy["step_down"])):
        name = f"{group}-scale-{direction}"
        answer = autoscaling.put_scaling_policy(
            AutoScalingGroupName=group,
            PolicyName=name,
            PolicyType="SimpleScaling",
            AdjustmentType="ChangeInCapacity",
            ScalingAdjustment=step,
            Cooldown=policy["cooldown_s"],
        )
        arn = answer.get("PolicyARN")
        if not arn:  # moto's answer omits it
            policies = autoscaling.describe_policies(AutoScalingGroupName=group, PolicyNames=[name])
            arn = policies["ScalingPolicies"][0]["PolicyARN"]
        arns[direction] = arn
    return arns


def _utilization_query(target: dict[str, Any], period_s: int) -> list[dict[str, Any]]:
    """A metric-math query of the target's utilization in percent, as alarms evaluate it."""
    metric = target["metric"]
    load: dict[str, Any] = {
        "Id": "load",
        "MetricStat": {
            "Metric": {
                "Namespace": metric["namespace"],
                "MetricName": metric["name"],
                "Dimensions": [{"Name": k, "Value": v} for k, v in metric["dimensions"].items()],
            },
            "Period": period_s,
            "Stat": metric["stat"],
        },
        "ReturnData": False,
    }
    per_second = f"load/{period_s}" if metric.get("per_second") else "load"
    unit = float(target["capacity_per_unit"])
    if target["kind"] == "asg":
        instances = {
            "Id": "instances",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/AutoScaling",
                    "MetricName": "GroupInServiceInstances",
                    "Dimensions": [{"Name": "AutoScalingGroupName", "Value": target["resource"]}],
                },
                "Period": period_s,
                "Stat": "Average",
            },
            "ReturnData": False,
        }
        expression = f"100 * ({per_second}) / (instances * {unit})"
        return [load, instances, {"Id": "utilization", "Expression": expression, "ReturnData": True}]
    expression = f"100 * ({per_second}) / {unit}"
    return [load, {"Id": "utilization", "Expression": expression, "ReturnData": True}]


def ensure_alarms(
    cloudwatch: Any, stage: str, config: dict[str, Any], policy_arns: dict[str, dict[str, str]]
) -> list[str]:
    """The scale-up and scale-down alarm of every target (PutMetricAlarm is an upsert).

    For a target in `report` mode on an EC2 group the alarms act on the group's
    policies, as in the seed; in `apply` mode the report job acts, so the alarms have
    no actions (their state changes still start the report job through EventBridge).
    """
    names = []
    period = int(config.get("period_s", 60))
    for target in config["targets"]:
        for direction in ("up", "down"):
            spec = target["policy"][f"scale_{direction}"]
            name = alarm_name(stage, target["name"], direction)
            actions = []
            if target["kind"] == "asg" and target.get("mode", "report") == "report":
                actions = [policy_arns[target["name"]][direction]]
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                AlarmDescription=f"iotcloud {stage}: {target['name']} scale {direction}",
                Metrics=_utilization_query(target, period),
                Threshold=float(spec["threshold"]),
                ComparisonOperator=COMPARISONS[spec["comparison"]],
                EvaluationPeriods=int(spec["evaluation_periods"]),
                DatapointsToAlarm=int(spec.get("datapoints_to_alarm", spec["evaluation_periods"])),
                TreatMissingData=spec.get("missing_data", "missing"),
                AlarmActions=actions,
                ActionsEnabled=bool(actions),
            )
            names.append(name)
    return names


def dashboard_body(stage: str, region: str) -> dict[str, Any]:
    """One widget per app metric, plus rejections by error code."""
    widgets = []
    for n, (metric, stat) in enumerate(DASHBOARD_METRICS):
        widgets.append(
            {
                "type": "metric",
                "x": (n % 2) * 12,
                "y": (n // 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": f"{metric} ({stat})",
                    "region": region,
                    "stat": stat,
                    "period": 60,
                    "metrics": [["iotcloud", metric, "Stage", stage]],
                },
            }
        )
    widgets.append(
        {
            "type": "metric",
            "x": 0,
            "y": (len(DASHBOARD_METRICS) // 2 + 1) * 6,
            "width": 24,
            "height": 6,
            "properties": {
                "title": "Rejected requests by error code",
                "region": region,
                "period": 60,
                "stat": "Sum",
                "metrics": [[{"expression": f"SEARCH('{{iotcloud,ErrorCode,Stage}} Stage=\"{stage}\"', 'Sum', 60)"}]],
            },
        }
    )
    return {"widgets": widgets}


def ensure_dashboard(cloudwatch: Any, stage: str, region: str) -> str:
    name = f"iotcloud-{stage}"
    cloudwatch.put_dashboard(DashboardName=name, DashboardBody=json.dumps(dashboard_body(stage, region)))
    return name


def ensure_monitoring(clients: Any, stage: str, region: str, config: dict[str, Any]) -> dict[str, Any]:
    """Everything above, for one stage. `clients(service)` returns a boto3 client."""
    ec2, autoscaling, cloudwatch = clients("ec2"), clients("autoscaling"), clients("cloudwatch")
    policy_arns = {t["name"]: ensure_asg(ec2, autoscaling, t) for t in config["targets"] if t["kind"] == "asg"}
    return {
        "alarms": ensure_alarms(cloudwatch, stage, config, policy_arns),
        "dashboard": ensure_dashboard(cloudwatch, stage, region),
        "groups": sorted(policy_arns),
    }
