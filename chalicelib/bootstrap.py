"""Create what the app needs besides what `chalice deploy` creates: tables and bucket.

The local stack runs this same code against moto; a real deployment runs
`python -m chalicelib.bootstrap --stage prod` once before `chalice deploy`.
Every step is idempotent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from chalicelib import models
from chalicelib.bootstrap_monitoring import ensure_monitoring
from chalicelib.config import Settings, stage_settings
from chalicelib.scaling import load_targets_config

ARCHIVE_LIFECYCLE = {
    "Rules": [
        {
            "ID": "archive-to-infrequent-access",
            "Status": "Enabled",
            "Filter": {"Prefix": "archive/"},
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
        }
    ]
}


def plan(settings: Settings) -> list[str]:
    """What bootstrap makes sure exists, in order."""
    return [
        f"DynamoDB table {settings.devices_table} (on demand; GSIs token_hash-index, kind-device_id-index)",
        f"DynamoDB table {settings.readings_table} (on demand; stream NEW_AND_OLD_IMAGES; TTL on x)",
        f"DynamoDB table {settings.aggregates_table} (on demand; rollups and the inverted index)",
        f"S3 bucket {settings.archive_bucket} (SSE-S3, public access blocked, archive/ to IA after 30 days)",
        f"scaling targets of {settings.stage}: EC2 launch template, group and policies; scale-up/down alarms",
        f"CloudWatch dashboard iotcloud-{settings.stage}",
    ]


def ensure_tables(settings: Settings) -> None:
    """Create the stage's DynamoDB tables if missing, and wait until they are active."""
    models.bind(settings)
    for model in models.ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True)


def ensure_bucket(s3: Any, settings: Settings) -> None:
    """Create the archive bucket if missing, encrypted, private, with its lifecycle."""
    bucket = settings.archive_bucket
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        if settings.region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": settings.region})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=ARCHIVE_LIFECYCLE)


def ensure_mail_identity(ses: Any, settings: Settings) -> None:
    """SES sends only from verified identities: request verification of MAIL_FROM.

    On AWS this mails a verification link (and in the SES sandbox recipients must be
    verified too); moto verifies at once.
    """
    if not settings.mail_from or settings.smtp_host:
        return
    address = parseaddr(settings.mail_from)[1]
    status = ses.get_identity_verification_attributes(Identities=[address])["VerificationAttributes"]
    if status.get(address, {}).get("VerificationStatus") not in ("Success", "Pending"):
        ses.verify_email_identity(EmailAddress=address)


def bootstrap(settings: Settings, clients: Callable[[str], Any]) -> dict[str, Any]:
    """Ensure every resource of the stage exists; `clients(service)` gives boto3 clients."""
    ensure_tables(settings)
    if settings.archive_bucket:
        ensure_bucket(clients("s3"), settings)
    ensure_mail_identity(clients("ses"), settings)
    config = load_targets_config(settings.stage, settings.scaling_file)
    return ensure_monitoring(clients, settings.stage, settings.region, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.bootstrap", description=__doc__)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    args = parser.parse_args(argv)
    settings = stage_settings(args.stage)
    for step in plan(settings):
        print(("would ensure " if args.dry_run else "ensure ") + step)
    if args.dry_run:
        return 0
    import boto3

    def clients(service: str) -> Any:
        return boto3.client(service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url)

    bootstrap(settings, clients)
    print(
        json.dumps(
            {
                "stage": settings.stage,
                "devices_table": settings.devices_table,
                "readings_table": settings.readings_table,
                "archive_bucket": settings.archive_bucket,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
