#!/usr/bin/env python3
"""Writes the lint fixtures of tests/lint.rs: for every check one positive and one negative case,
each a task definition and/or IAM policy derived from a clean base by one change, and its
`.expect` file: the findings the case must produce (`ID FILE:LINE:COLUMN`), where the position is
the one of the offending key as this script printed it (its own JSON printer records where each
key starts, independently of the Rust reader). An optional first line `# args: ...` gives extra
arguments (role policies). Run it from anywhere; it rewrites the generated files in place:

    python3 tests/data/lint/make_fixtures.py

Not generated (written by hand, with their .expect files): the CloudFormation YAML pair
cfn-template-{pos,neg}.yaml and iam-url-encoded-policy-version.json (a document as the IAM API
returns it, URL-encoded in a string).
"""

import copy
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DIGEST = "@sha256:" + "4f" * 32
ACCOUNT = "111122223333"


class Writer:
    """A JSON printer (2-space indent, short scalar arrays inline) that records positions."""

    def __init__(self):
        self.parts = []
        self.line = 1
        self.col = 1
        self.pos = {}

    def w(self, text):
        for ch in text:
            if ch == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
        self.parts.append(text)

    def emit(self, v, path=(), ind=0):
        if isinstance(v, dict):
            if not v:
                self.w("{}")
                return
            self.w("{\n")
            items = list(v.items())
            for i, (k, x) in enumerate(items):
                self.w("  " * (ind + 1))
                self.pos[path + (k,)] = (self.line, self.col)
                self.w(json.dumps(k) + ": ")
                self.emit(x, path + (k,), ind + 1)
                self.w(",\n" if i < len(items) - 1 else "\n")
            self.w("  " * ind + "}")
        elif isinstance(v, list):
            if not v:
                self.w("[]")
                return
            if all(not isinstance(x, (dict, list)) for x in v):
                self.w("[")
                for i, x in enumerate(v):
                    self.pos[path + (i,)] = (self.line, self.col)
                    self.w(json.dumps(x))
                    if i < len(v) - 1:
                        self.w(", ")
                self.w("]")
                return
            self.w("[\n")
            for i, x in enumerate(v):
                self.w("  " * (ind + 1))
                self.pos[path + (i,)] = (self.line, self.col)
                self.emit(x, path + (i,), ind + 1)
                self.w(",\n" if i < len(v) - 1 else "\n")
            self.w("  " * ind + "]")
        else:
            self.w(json.dumps(v))

    def text(self):
        return "".join(self.parts) + "\n"


def log_config(prefix):
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": "/ecs/fixture",
            "awslogs-region": "eu-west-1",
            "awslogs-stream-prefix": prefix,
        },
    }


def base():
    """A task definition every check passes: the shipped examples' settings, images by digest."""
    return {
        "family": "fixture",
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "pidMode": "task",
        "cpu": "512",
        "memory": "1024",
        "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/fixture-execution",
        "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/fixture-task",
        "containerDefinitions": [
            {
                "name": "tasksentry",
                "image": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/tasksentry{DIGEST}",
                "essential": False,
                "user": "0",
                "readonlyRootFilesystem": True,
                "memory": 128,
                "linuxParameters": {
                    "capabilities": {
                        "add": ["SYS_PTRACE"],
                        "drop": ["AUDIT_WRITE", "CHOWN", "FOWNER", "FSETID", "KILL", "MKNOD",
                                 "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
                                 "SETUID", "SYS_CHROOT"],
                    }
                },
                "environment": [{"name": "TASKSENTRY_OUTPUTS", "value": "stdout"}],
                "restartPolicy": {"enabled": True, "restartAttemptPeriod": 60},
                "stopTimeout": 30,
                "logConfiguration": log_config("tasksentry"),
            },
            {
                "name": "app",
                "image": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/app{DIGEST}",
                "essential": True,
                "user": "10001:10001",
                "readonlyRootFilesystem": True,
                "linuxParameters": {"initProcessEnabled": True},
                "environment": [{"name": "APP_MODE", "value": "production"}],
                "dependsOn": [{"containerName": "tasksentry", "condition": "START"}],
                "logConfiguration": log_config("app"),
            },
        ],
    }


S = ("containerDefinitions", 0)
A = ("containerDefinitions", 1)


def sidecar(td):
    return td["containerDefinitions"][0]


def app(td):
    return td["containerDefinitions"][1]


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource, **extra):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    statement.update(extra)
    return statement


LOGS_ON_ALERTS = allow(
    ["logs:CreateLogStream", "logs:PutLogEvents"],
    [f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/security/tasksentry/alerts",
     f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/security/tasksentry/alerts:*"],
)
DB_SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:orders/db-AbCdEf"

CASES = []


def case(name, doc=None, expect=(), policies=(), wrap=None, positional_policy=None):
    """`expect`: (check id, file key, path) with file key "td", "policy" or a policy role."""
    CASES.append((name, doc, list(expect), list(policies), wrap, positional_policy))


def td_with(change):
    td = base()
    change(td)
    return td


def set_env(container, name, value):
    container.setdefault("environment", []).append({"name": name, "value": value})


# ---- TS-ECS ----
case("ts-ecs-001-pos", td_with(lambda t: set_env(app(t), "DB_PASSWORD", "hunter2")),
     [("TS-ECS-001", "td", A + ("environment", 1, "value"))])
case("ts-ecs-001-neg", td_with(lambda t: (set_env(app(t), "DB_SECRET_ARN", DB_SECRET),
                                          set_env(app(t), "LOG_LEVEL", "info"))))


def public_param_and_s3(t):
    app(t)["secrets"] = [
        {"name": "REGIONS", "valueFrom":
         f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/aws/service/global-infrastructure/regions"},
        {"name": "API_KEY", "valueFrom": "arn:aws:s3:::config-bucket/api-key"},
    ]


case("ts-ecs-002-pos", td_with(public_param_and_s3),
     [("TS-ECS-002", "td", A + ("secrets", 0, "valueFrom")),
      ("TS-ECS-002", "td", A + ("secrets", 1, "valueFrom"))])
case("ts-ecs-002-neg", td_with(lambda t: app(t).update(secrets=[
    {"name": "DB_PASSWORD", "valueFrom": DB_SECRET},
    {"name": "API_KEY", "valueFrom": "/orders/api-key"}])))
case("ts-ecs-003-pos", td_with(lambda t: app(t).update(
    command=["python", "-m", "orders", "--db-password", "hunter2"])),
     [("TS-ECS-003", "td", A + ("command",))])
case("ts-ecs-003-neg", td_with(lambda t: app(t).update(
    command=["python", "-m", "orders", "--queue", "orders"])))
case("ts-ecs-004-pos", td_with(lambda t: app(t).pop("user")),
     [("TS-ECS-004", "td", A + ("name",))])
case("ts-ecs-004-neg", td_with(lambda t: app(t).update(user="nginx")))
case("ts-ecs-005-pos", td_with(lambda t: app(t).update(readonlyRootFilesystem=False)),
     [("TS-ECS-005", "td", A + ("readonlyRootFilesystem",))])
case("ts-ecs-005-neg", td_with(lambda t: app(t).update(readonlyRootFilesystem="true")))
case("ts-ecs-006-pos", td_with(lambda t: app(t)["linuxParameters"].update(
    capabilities={"add": ["SYS_PTRACE"]})),
     [("TS-ECS-006", "td", A + ("linuxParameters", "capabilities", "add"))])
case("ts-ecs-006-neg", td_with(lambda t: app(t)["linuxParameters"].update(
    capabilities={"drop": ["NET_RAW"]})))
case("ts-ecs-007-pos", td_with(lambda t: app(t).update(privileged=True)),
     [("TS-ECS-007", "td", A + ("privileged",))])
case("ts-ecs-007-neg", td_with(lambda t: app(t).update(privileged=False)))
case("ts-ecs-008-pos", td_with(lambda t: t.update(pidMode="host")),
     [("TS-ECS-008", "td", ("pidMode",)), ("TS-SIDECAR-002", "td", ("pidMode",))])
case("ts-ecs-008-neg", base(), wrap="taskDefinition")
case("ts-ecs-009-pos", td_with(lambda t: t.update(networkMode="host")),
     [("TS-ECS-009", "td", ("networkMode",))])
case("ts-ecs-009-neg", td_with(lambda t: t.update(networkMode="bridge")))
case("ts-ecs-010-pos", td_with(lambda t: app(t).pop("logConfiguration")),
     [("TS-ECS-010", "td", A + ("name",))])
case("ts-ecs-010-neg", base())
case("ts-ecs-011-pos", td_with(lambda t: t.pop("memory")),
     [("TS-ECS-011", "td", A + ("name",))])
case("ts-ecs-011-neg", td_with(lambda t: (t.pop("memory"), app(t).update(memory=512))))
case("ts-ecs-012-pos", td_with(lambda t: app(t)["linuxParameters"].update(initProcessEnabled=False)),
     [("TS-ECS-012", "td", A + ("linuxParameters", "initProcessEnabled"))])
# The sidecar has no init process either: it is exempt (its supervisor reaps its children).
case("ts-ecs-012-neg", base())
case("ts-ecs-013-pos", td_with(lambda t: app(t).update(image="nginx:1.27")),
     [("TS-ECS-013", "td", A + ("image",))])
case("ts-ecs-013-neg", td_with(lambda t: app(t).update(image="public.ecr.aws/nginx/nginx" + DIGEST)))
case("ts-ecs-014-pos", td_with(lambda t: t.update(taskRoleArn=t["executionRoleArn"])),
     [("TS-ECS-014", "td", ("taskRoleArn",))])
case("ts-ecs-014-neg", base(), wrap="taskDefinition")
case("ts-ecs-015-pos", td_with(lambda t: (t.pop("taskRoleArn"), set_env(
    app(t), "ORDERS_QUEUE_URL", f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/orders"))),
     [("TS-ECS-015", "td", A + ("environment", 1, "value"))])
case("ts-ecs-015-neg", td_with(lambda t: t.pop("taskRoleArn")))

# ---- TS-IAM ---- (policies alone, as positional files)
BUCKET = "arn:aws:s3:::orders-bucket/*"
case("ts-iam-001-pos", positional_policy=policy(allow("*", BUCKET)),
     expect=[("TS-IAM-001", "policy", ("Statement", 0, "Action"))])
case("ts-iam-001-neg", positional_policy=policy(allow(["s3:GetObject"], BUCKET)))
case("ts-iam-002-pos", positional_policy=policy(allow("s3:*", BUCKET)),
     expect=[("TS-IAM-002", "policy", ("Statement", 0, "Action"))])
case("ts-iam-002-neg", positional_policy=policy(allow("s3:Get*", BUCKET)), wrap="PolicyVersion")
case("ts-iam-003-pos", positional_policy=policy(allow(["sqs:SendMessage"], "*")),
     expect=[("TS-IAM-003", "policy", ("Statement", 0, "Resource"))])
case("ts-iam-003-neg", positional_policy=policy(
    allow("ecr:GetAuthorizationToken", "*"), allow("logs:DescribeLogGroups", "*")))
PASS_ROLE = allow("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/app-*",
                  Condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}})
case("ts-iam-004-pos", positional_policy=policy(
    PASS_ROLE, allow("ecs:RunTask", f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/app:*")),
     expect=[("TS-IAM-004", "policy", ("Statement", 0, "Action"))])
case("ts-iam-004-neg", positional_policy=policy(
    PASS_ROLE, allow("ecs:DescribeTasks", f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task/prod/*")))
case("ts-iam-005-pos", positional_policy=policy(allow("sts:AssumeRole", "*")),
     expect=[("TS-IAM-003", "policy", ("Statement", 0, "Resource")),
             ("TS-IAM-005", "policy", ("Statement", 0, "Resource"))])
case("ts-iam-005-neg", positional_policy=policy(
    allow("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/reader")))
case("ts-iam-006-pos", positional_policy=policy(
    {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": BUCKET}),
     expect=[("TS-IAM-006", "policy", ("Statement", 0, "NotAction"))])
case("ts-iam-006-neg", positional_policy=policy(
    {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}, allow("s3:GetObject", BUCKET)))
case("ts-iam-007-pos", positional_policy=policy(
    allow("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/app-task")), wrap="PolicyDocument",
     expect=[("TS-IAM-007", "policy", ("Statement", 0, "Action"))])
case("ts-iam-007-neg", positional_policy=policy(PASS_ROLE))


TRUST = {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
         "Action": "sts:AssumeRole"}
case("ts-iam-009-pos", positional_policy=policy(TRUST),
     expect=[("TS-IAM-009", "policy", ("Statement", 0, "Principal"))])
case("ts-iam-009-neg", positional_policy=policy(dict(TRUST, Condition={
    "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:*"}})))


def with_db_secret(t):
    app(t)["secrets"] = [{"name": "DB_PASSWORD", "valueFrom": DB_SECRET}]


case("ts-iam-008-pos", td_with(with_db_secret),
     policies=[("execution-role", policy(allow(
         "secretsmanager:GetSecretValue",
         f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:*")))],
     expect=[("TS-IAM-008", "execution-role", ("Statement", 0, "Resource"))])
case("ts-iam-008-neg", td_with(with_db_secret),
     policies=[("execution-role", policy(allow(
         "secretsmanager:GetSecretValue",
         f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:orders/db-??????")))])

# ---- TS-SIDECAR ----


def no_sidecar(t):
    t["containerDefinitions"].pop(0)
    t["containerDefinitions"][0].pop("dependsOn")


def renamed_sidecar(t):
    sidecar(t)["name"] = "monitor"
    sidecar(t)["environment"] = []
    app(t)["dependsOn"][0]["containerName"] = "monitor"


case("ts-sidecar-001-pos", td_with(no_sidecar),
     [("TS-SIDECAR-001", "td", ("containerDefinitions",))])
case("ts-sidecar-001-neg", td_with(renamed_sidecar))
case("ts-sidecar-002-pos", td_with(lambda t: t.pop("pidMode")),
     [("TS-SIDECAR-002", "td", S + ("name",))])
case("ts-sidecar-002-neg", base(), wrap="taskDefinition")
case("ts-sidecar-003-pos", td_with(lambda t: (sidecar(t).pop("linuxParameters"),
                                              set_env(sidecar(t), "TASKSENTRY_MODE", "trace"))),
     [("TS-SIDECAR-003", "td", S + ("environment", 1, "value"))])
case("ts-sidecar-003-neg", td_with(lambda t: set_env(sidecar(t), "TASKSENTRY_MODE", "trace")))
case("ts-sidecar-004-pos", td_with(lambda t: sidecar(t)["linuxParameters"]["capabilities"].update(
    drop=["ALL"])),
     [("TS-SIDECAR-004", "td", S + ("linuxParameters", "capabilities", "drop"))])
case("ts-sidecar-004-neg", td_with(lambda t: sidecar(t).pop("linuxParameters")))
case("ts-sidecar-005-pos", td_with(lambda t: app(t).pop("dependsOn")),
     [("TS-SIDECAR-005", "td", A + ("name",))])
case("ts-sidecar-005-neg", base())
case("ts-sidecar-006-pos", td_with(lambda t: app(t)["dependsOn"][0].update(condition="HEALTHY")),
     [("TS-SIDECAR-006", "td", A + ("dependsOn", 0, "condition"))])
case("ts-sidecar-006-neg", td_with(lambda t: (
    app(t)["dependsOn"][0].update(condition="HEALTHY"),
    sidecar(t).update(healthCheck={"command": ["CMD", "/tasksentry", "version"]}))))


def cloudwatch(t, flush=None, group=None):
    env = sidecar(t)["environment"]
    env[0]["value"] = "cloudwatch"
    if group:
        env.append({"name": "TASKSENTRY_LOG_GROUP", "value": group})
    if flush:
        env.append({"name": "TASKSENTRY_FLUSH_TIMEOUT", "value": flush})


case("ts-sidecar-007-pos", td_with(lambda t: cloudwatch(t, flush="30s")),
     [("TS-SIDECAR-007", "td", S + ("stopTimeout",))])
case("ts-sidecar-007-neg", td_with(lambda t: cloudwatch(t, flush="10s")))
case("ts-sidecar-008-pos", td_with(lambda t: (cloudwatch(t), t.pop("taskRoleArn"))),
     [("TS-SIDECAR-008", "td", S + ("environment", 0, "value"))])
case("ts-sidecar-008-neg", td_with(lambda t: t.pop("taskRoleArn")))
ALERTS = "/security/tasksentry/alerts"
case("ts-sidecar-009-pos", td_with(lambda t: cloudwatch(t, flush="10s", group=ALERTS)),
     policies=[("task-role", policy(allow(
         ["logs:CreateLogStream", "logs:PutLogEvents"],
         f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/ecs/other:*")))],
     expect=[("TS-SIDECAR-009", "td", S + ("environment", 1, "value"))])
case("ts-sidecar-009-neg", td_with(lambda t: cloudwatch(t, flush="10s", group=ALERTS)),
     policies=[("task-role", policy(LOGS_ON_ALERTS))])
case("ts-sidecar-010-pos", td_with(lambda t: sidecar(t).pop("essential")),
     [("TS-SIDECAR-010", "td", S + ("name",))])
case("ts-sidecar-010-neg", td_with(lambda t: sidecar(t).update(essential=True)))


# ---- A CloudFormation template in JSON: the task role is linked by Fn::GetAtt, the execution
# role is a parameter (unknown: its checks do not run). ----


def pascal(value, keep=False):
    """CloudFormation's spelling: every key capitalised, except the log driver's options."""
    if isinstance(value, dict):
        return {(k if keep else k[0].upper() + k[1:]): pascal(v, k == "options") for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def cfn_template():
    td = base()
    cloudwatch(td, flush="10s", group=ALERTS)
    props = pascal(td)
    props["TaskRoleArn"] = {"Fn::GetAtt": ["TaskRole", "Arn"]}
    props["ExecutionRoleArn"] = {"Ref": "ExecutionRoleArn"}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"ExecutionRoleArn": {"Type": "String"}},
        "Resources": {
            "TaskRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
                {"PolicyName": "app", "PolicyDocument": policy(allow("sts:AssumeRole", "*"))}]}},
            "TaskDefinition": {"Type": "AWS::ECS::TaskDefinition", "Properties": props},
        },
    }


STATEMENT = ("Resources", "TaskRole", "Properties", "Policies", 0, "PolicyDocument", "Statement", 0)
case("cfn-template-json-pos", cfn_template(),
     [("TS-IAM-003", "td", STATEMENT + ("Resource",)),
      ("TS-IAM-005", "td", STATEMENT + ("Resource",)),
      ("TS-SIDECAR-009", "td", ("Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0,
                                "Environment", 1, "Value"))])


def write(name, value, wrap):
    w = Writer()
    if wrap == "taskDefinition":
        value = {"taskDefinition": value, "tags": []}
        prefix = ("taskDefinition",)
    elif wrap == "PolicyVersion":
        value = {"PolicyVersion": {"Document": value, "VersionId": "v1", "IsDefaultVersion": True}}
        prefix = ("PolicyVersion", "Document")
    elif wrap == "PolicyDocument":
        value = {"RoleName": "app-task", "PolicyName": "inline", "PolicyDocument": value}
        prefix = ("PolicyDocument",)
    else:
        prefix = ()
    w.emit(value)
    with open(os.path.join(HERE, name), "w") as f:
        f.write(w.text())
    return {path[len(prefix):]: pos for path, pos in w.pos.items() if path[:len(prefix)] == prefix}


def main():
    for name, doc, expect, policies, wrap, positional_policy in CASES:
        files = {}
        args = []
        if doc is not None:
            files["td"] = (f"{name}.json", write(f"{name}.json", doc, wrap))
        if positional_policy is not None:
            files["policy"] = (f"{name}.json", write(f"{name}.json", positional_policy, wrap))
        for role, document in policies:
            file = f"{name}.{role}-policy.json"
            files[role] = (file, write(file, document, None))
            args += [f"--{role}-policy", file]
        lines = []
        if args:
            lines.append("# args: " + " ".join(args))
        for check, key, path in sorted(expect):
            file, positions = files[key]
            line, col = positions[path]
            lines.append(f"{check} {file}:{line}:{col}")
        with open(os.path.join(HERE, f"{name}.expect"), "w") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
    print(f"{len(CASES)} cases")


main()
