"""Deployment tooling: the CloudFormation merge template, the IAM policies, the package (not in the Lambda zip)."""
