"""X-Ray tracing with Powertools Tracer: deployed functions run with active tracing (``xray: true`` in
.chalice/config.json), and the Tracer patches boto3/botocore so every DynamoDB, SQS and SES call is a
subsegment of the invocation's trace. Outside Lambda (tests, ``make run``) the Tracer disables itself."""

from aws_lambda_powertools import Tracer

tracer = Tracer(service="segments", patch_modules=["boto3", "botocore"])
