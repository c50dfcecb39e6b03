"""iotcloud: a serverless IoT backend (Chalice + DynamoDB + S3)."""
