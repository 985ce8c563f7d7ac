"""Fills a moto S3 server for the initializer's tests, with boto3 (a real S3 client).

    python moto_fixture.py <endpoint> <bucket> <src-dir> <prefix>

Creates an IAM user with an access key allowed everything (moto checks signatures and
policies once INITIAL_NO_AUTH_ACTION_COUNT requests have passed), the bucket, and one
object per file of <src-dir> under <prefix>/ (at the bucket's root for an empty <prefix>). Prints {"access_key", "secret_key"}.
Makes exactly 4 + <number of files> requests: start moto with that many unauthenticated.
"""

import json
import os
import sys

import boto3

endpoint, bucket, src, prefix = sys.argv[1:5]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="initializer")
key = iam.create_access_key(UserName="initializer")["AccessKey"]
iam.put_user_policy(
    UserName="initializer",
    PolicyName="all",
    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
)
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket=bucket)
for root, _, files in os.walk(src):
    for name in sorted(files):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, src).replace(os.sep, "/")
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{rel}" if prefix else rel, Body=f.read())
print(json.dumps({"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}))
