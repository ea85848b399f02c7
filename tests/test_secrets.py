"""No secret is tracked by git: no credential files, no key material, no generated keys."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from manifest_exchange.local.stack import EmbeddedStack
from manifest_exchange.paths import PROJECT_ROOT

# Shapes of key material that must never be committed.
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "generated access key id": re.compile(
        r"\bMX(ADMIN|LOADER|PIPELINE|PARTNER|RETENTION)[0-9A-F]{12}\b"
    ),
    "secret assignment": re.compile(
        r"(?i)(secret_access_key|MX_HMAC_KEY)\s*[=:]\s*[\"']?[A-Za-z0-9/+_=-]{30,}"
    ),
}
FORBIDDEN_NAMES = {"credentials.json", "hmac-key.json", "s3-identities.json", "processes.json"}


def _tracked_files() -> list[Path]:
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing is tracked")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [PROJECT_ROOT / name for name in listed.split("\0") if name]


def test_no_local_state_or_credential_files_are_tracked() -> None:
    for path in _tracked_files():
        relative = path.relative_to(PROJECT_ROOT)
        assert relative.parts[0] not in {".local", ".tools", ".venv"}, relative
        assert relative.name not in FORBIDDEN_NAMES, relative
        if relative.suffix == ".env" or relative.name.endswith(".env"):
            pytest.fail(f"{relative}: environment files with values are generated, not tracked")


def test_no_key_material_in_tracked_files() -> None:
    findings = []
    for path in _tracked_files():
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for kind, pattern in SECRET_PATTERNS.items():
            if pattern.search(text):
                findings.append(f"{path.relative_to(PROJECT_ROOT)}: {kind}")
    assert not findings


def test_generated_credentials_appear_in_no_tracked_file(embedded_stack: EmbeddedStack) -> None:
    generated = json.loads(embedded_stack.credentials_file.read_text())
    values = {v for identity in generated.values() for v in identity.values()}
    values.add(json.loads(embedded_stack.hmac_key_file.read_text())["key"])
    # The developer's own stack too, when there is one on this machine.
    local = PROJECT_ROOT / ".local" / "stack" / "credentials.json"
    if local.is_file():
        values |= {
            v for identity in json.loads(local.read_text()).values() for v in identity.values()
        }
    for path in _tracked_files():
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="ignore")
            leaked = [v for v in values if v in text]
            assert not leaked, path.relative_to(PROJECT_ROOT)
