"""The dev "outbox" provider's files: one JSON per message (and an .eml per email).

Shared by the outbox sender (which writes) and ``/_dev/outbox`` (which lists).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

NAME_RE = re.compile(r"^[0-9TZ_.-]+-[0-9a-f]{12}$")
LINK_RE = re.compile(r"https?://[^\s<>\"')]+")
# Lines up to RFC 5322's limit: a long List-Unsubscribe <URL> folded at 78 would become an encoded word.
EML_POLICY = policy.default.clone(max_line_length=998)


def write_outbox(
    directory: Path,
    *,
    channel: str,
    to: str,
    text: str,
    subject: str | None = None,
    html: str | None = None,
    message_id: int | str | None = None,
    sender: str | None = None,
    headers: dict | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> str:
    """Write one message; returns its outbox name (used as the provider id)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    name = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:12]}"
    record = {
        "name": name, "channel": channel, "to": to, "from": sender, "subject": subject,
        "text": text, "html": html, "created_at": now.isoformat(), "message_id": message_id,
        "headers": headers or {}, "attachments": [a[0] for a in attachments or []],
    }
    tmp = directory / f".{name}.json.tmp"
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    if channel == "email":
        eml = EmailMessage(policy=EML_POLICY)
        eml["To"] = to
        eml["From"] = sender or "no-reply@example.com"
        eml["Subject"] = subject or ""
        for key, value in (headers or {}).items():
            eml[key] = value
        eml.set_content(text)
        if html:
            eml.add_alternative(html, subtype="html")
        for filename, content_type, data in attachments or []:
            maintype, _, subtype = content_type.partition("/")
            eml.add_attachment(data, maintype=maintype, subtype=subtype.split(";")[0], filename=filename)
        (directory / f"{name}.eml").write_bytes(bytes(eml))
    os.replace(tmp, directory / f"{name}.json")  # readers never see a half-written file
    return name


def list_outbox(directory: Path, limit: int = 200) -> list[dict]:
    if not directory.exists():
        return []
    files = sorted(directory.glob("*.json"), reverse=True)[:limit]
    items = []
    for path in files:
        try:
            item = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        item["links"] = LINK_RE.findall(item.get("text") or "")
        items.append(item)
    return items


def read_outbox_item(directory: Path, name: str) -> dict | None:
    if not NAME_RE.match(name):
        return None
    path = directory / f"{name}.json"
    if not path.exists():
        return None
    item = json.loads(path.read_text(encoding="utf-8"))
    item["links"] = LINK_RE.findall(item.get("text") or "")
    return item
