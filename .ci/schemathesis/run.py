#!/usr/bin/env python3
"""Lints Snorq's OpenAPI document, then runs schemathesis (`--checks all`) against a real
Snorq server on a fresh database.

For each backend asked for (sqlite, postgres): a fresh database, `snorq serve` on a free port
with `snorq-tools simulate` as the platforms (it answers the account proofs), then a seeded
organization (BUSINESS plan, a WhatsApp connection, a customer's conversation, a label, a note,
an API key, an invitation) so that paths get real ids. Exits non-zero on any finding.

Usage: run.py SNORQ_BINARY [sqlite] [postgres]
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
META_SECRET = "schemathesis-meta-secret"
TIKTOK_SECRET = "schemathesis-tiktok-secret"
NUMBER = "100000000000001"
WABA = "100000000000002"
PASSWORD = "correct horse battery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, token=None, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None and "content-type" not in {k.lower() for k in (headers or {})}:
        request.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, text


def expect(result, status, what):
    if result[0] != status:
        sys.exit(f"seeding failed at {what}: {result}")
    return result[1]


def wait_for(url, what, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not start")


def seed(base, snorq, env):
    """A seeded organization; returns the values the run's paths need."""
    for email in ("owner@example.com", "second@example.com"):
        expect(call(base, "POST", "/api/v1/auth/signup", body={"email": email, "name": "Owner", "password": PASSWORD}), 202, "signup")
    login = expect(call(base, "POST", "/api/v1/auth/login", body={"email": "owner@example.com", "password": PASSWORD}), 200, "login")
    token = login["token"]
    org = expect(call(base, "POST", "/api/v1/orgs", token, {"name": "Schemathesis"}), 201, "org")["id"]
    subprocess.run([snorq, "admin", "set-plan", "--org", org, "--plan", "business"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    connection = expect(call(base, "POST", f"/api/v1/orgs/{org}/connections", token,
                             {"platform": "whatsapp", "platform_user_id": NUMBER, "waba_id": WABA,
                              "access_token": "schemathesis-token"}), 201, "connection")["id"]
    now = int(time.time())
    webhook = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": NUMBER},
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": "15551234567"}],
        "messages": [{"from": "15551234567", "id": "wamid.schemathesis", "timestamp": str(now),
                      "type": "text", "text": {"body": "hello"}}]}}]}]}
    raw = json.dumps(webhook).encode()
    signature = "sha256=" + hmac.new(META_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    expect(call(base, "POST", "/webhooks/whatsapp", raw=raw,
                headers={"content-type": "application/json", "x-hub-signature-256": signature}), 200, "webhook")
    conversations = expect(call(base, "GET", f"/api/v1/orgs/{org}/conversations", token), 200, "conversations")
    conversation = conversations["items"][0]["id"]
    messages = expect(call(base, "GET", f"/api/v1/orgs/{org}/conversations/{conversation}/messages", token), 200, "messages")
    message = messages["items"][0]["id"]
    label = expect(call(base, "POST", f"/api/v1/orgs/{org}/labels", token, {"name": "vip"}), 201, "label")["id"]
    note = expect(call(base, "POST", f"/api/v1/orgs/{org}/conversations/{conversation}/notes", token, {"text": "n"}), 201, "note")["id"]
    key = expect(call(base, "POST", f"/api/v1/orgs/{org}/api-keys", token, {"name": "k"}), 201, "api key")["id"]
    expect(call(base, "POST", f"/api/v1/orgs/{org}/invitations", token, {"email": "second@example.com"}), 201, "invitation")
    # An invitation addressed to the run's user, from another organization: accept and decline
    # have a real one.
    second = expect(call(base, "POST", "/api/v1/auth/login", body={"email": "second@example.com", "password": PASSWORD}), 200, "login")["token"]
    other = expect(call(base, "POST", "/api/v1/orgs", second, {"name": "Other"}), 201, "other org")["id"]
    subprocess.run([snorq, "admin", "set-plan", "--org", other, "--plan", "business"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    invitation = expect(call(base, "POST", f"/api/v1/orgs/{other}/invitations", second, {"email": "owner@example.com"}), 201, "invitation")["id"]
    reply = expect(call(base, "POST", f"/api/v1/orgs/{org}/conversations/{conversation}/messages", token, {"text": "hi"}), 202, "reply")["id"]
    me = expect(call(base, "GET", "/api/v1/me", token), 200, "me")
    return {
        "TOKEN": token, "ORG_ID": org, "CONNECTION_ID": connection, "CONVERSATION_ID": conversation,
        "MESSAGE_ID": message, "LABEL_ID": label, "NOTE_ID": note, "KEY_ID": key, "INVITATION_ID": invitation,
        "SEND_ID": reply, "USER_ID": me["id"],
    }


def lint(url):
    """The served document is valid OpenAPI (openapi-spec-validator): it checks the document
    against the specification, including that operationIds are unique."""
    from openapi_spec_validator import validate

    with urllib.request.urlopen(url, timeout=30) as response:
        document = json.load(response)
    validate(document)
    ids = [op.get("operationId") for item in document["paths"].values() for op in item.values()
           if isinstance(op, dict) and "responses" in op]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        sys.exit(f"operationIds used more than once: {duplicates}")
    print(f"OpenAPI {document['openapi']}: valid, {len(ids)} operations, unique operationIds", flush=True)


def without_pinned_ids(config):
    """The config without `parameters` lines, and without the [[operations]] blocks left with
    nothing but filters (schemathesis refuses those)."""
    blocks, current = [], []
    for line in config.splitlines(keepends=True):
        if line.startswith("["):
            blocks.append(current)
            current = []
        current.append(line)
    blocks.append(current)
    kept = []
    for block in blocks:
        block = [line for line in block if not line.startswith("parameters = ")]
        if block and block[0].startswith("[[operations]]"):
            settings = [l for l in block[1:] if l.strip() and not l.lstrip().startswith(("#", "include-", "exclude-"))]
            if not settings:
                continue
        kept.extend(block)
    return "".join(kept)


def tools_binary(snorq):
    """`snorq-tools` (the simulator), built next to `snorq`."""
    return os.path.join(os.path.dirname(snorq), "snorq-tools")


def run(snorq, backend):
    work = tempfile.mkdtemp(prefix="snorq-schemathesis-")
    port, sim_port = free_port(), free_port()
    base, sim = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}"
    env = dict(os.environ)
    database = None
    if backend == "postgres":
        admin = os.environ.get("SNORQ_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        database = "snorq_test_schemathesis_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {database}"], check=True)
        url = admin.rsplit("/", 1)[0] + "/" + database
    else:
        url = f"sqlite://{work}/snorq.db"
    key = base64.b64encode(os.urandom(32)).decode()
    env.update({
        "SNORQ_DATABASE_URL": url, "SNORQ_DATA_DIR": work, "SNORQ_ENCRYPTION_KEYS": key,
        "SNORQ_WHATSAPP_APP_SECRET": META_SECRET, "SNORQ_FACEBOOK_APP_SECRET": META_SECRET,
        "SNORQ_TIKTOK_APP_SECRET": TIKTOK_SECRET, "SNORQ_META_VERIFY_TOKEN": "verify",
        "SNORQ_GRAPH_BASE_URL": sim, "SNORQ_TIKTOK_BASE_URL": sim,
        # The run signs up and fails logins far beyond what a person would.
        "SNORQ_SIGNUPS_PER_HOUR": "1000000", "SNORQ_LOGIN_FAILURES_PER_PAIR": "1000000",
        "SNORQ_LOGIN_FAILURES_PER_ADDRESS": "1000000", "SNORQ_LIVE_STREAMS_PER_USER": "1000",
        "SNORQ_LOG": "warn",
        # The platforms' apps (played by the simulator): checks and connect flows work.
        "SNORQ_PUBLIC_URL": base, "SNORQ_WHATSAPP_APP_ID": "sim-meta-app",
        "SNORQ_FACEBOOK_APP_ID": "sim-meta-app", "SNORQ_TIKTOK_APP_ID": "sim-tiktok-app",
    })
    processes = []
    try:
        log = open(os.path.join(work, "service.log"), "w")
        processes.append(subprocess.Popen([snorq, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                                          stdout=log, stderr=log))
        processes.append(subprocess.Popen(
            [tools_binary(snorq), "simulate", "--target", base, "--listen", f"127.0.0.1:{sim_port}", "--rate", "0",
             "--whatsapp-app-secret", META_SECRET, "--facebook-app-secret", META_SECRET,
             "--tiktok-app-secret", TIKTOK_SECRET, "--fail", "none"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(base + "/readyz", "snorq serve")
        wait_for(sim + "/_simulator/stats", "snorq-tools simulate")
        lint(base + "/api/v1/openapi.json")
        values = seed(base, snorq, env)
        env.update({f"SCHEMATHESIS_{k}": v for k, v in values.items()})
        config = os.path.join(HERE, "schemathesis.toml")
        # The stateful pass follows links between calls: pinned ids would override theirs.
        unpinned = os.path.join(work, "schemathesis-stateful.toml")
        with open(config) as source, open(unpinned, "w") as target:
            target.write(without_pinned_ids(source.read()))
        failed = 0
        for phases, config_file in (("examples,coverage,fuzzing", config), ("stateful", unpinned)):
            command = ["schemathesis", "--config-file", config_file, "run",
                       base + "/api/v1/openapi.json", "--checks", "all", "--phases", phases, "--no-color"]
            command += os.environ.get("SNORQ_SCHEMATHESIS_ARGS", "").split()
            print(f"== schemathesis on {backend}, {phases}: {' '.join(command)}", flush=True)
            result = subprocess.run(command, env=env)
            if result.returncode != 0:
                failed = result.returncode
                print(f"service log: {os.path.join(work, 'service.log')}")
        return failed
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if database:
            subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    snorq = os.path.abspath(sys.argv[1])
    backends = sys.argv[2:] or ["sqlite", "postgres"]
    failed = [b for b in backends if run(snorq, b) != 0]
    if failed:
        sys.exit(f"schemathesis found problems on: {', '.join(failed)}")
    print(f"schemathesis: 0 failures on {', '.join(backends)}")


if __name__ == "__main__":
    main()
