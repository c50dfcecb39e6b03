"""`make reliability`: the reliability suite, run against real local stacks.

Five parts (docs/RELIABILITY.md): schemathesis fuzzing of the OpenAPI document, a corpus of
bad and hostile requests, injected DynamoDB/S3 faults and a handler crash under a simulated
fleet, a 500-device load run, and the auth matrix of every route by every kind of caller.
`python -m reliability` runs them, prints a table and writes bench/results/reliability.json.
"""
