"""Pure domain code: no boto3, PynamoDB or Chalice imports here."""
