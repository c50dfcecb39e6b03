"""Adapters: DynamoDB (PynamoDB) repositories and other AWS services.

They speak the domain's language, including its errors.
"""
