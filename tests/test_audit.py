"""Every fix applied leaves a JSON line in the audit log; nothing is changed if the log cannot be written."""

from __future__ import annotations

import json
from urllib.parse import quote

from conftest import PASSWORD, run_seqtui


def test_fix_appends_one_line_per_sequence(db, tmp_path):
    db.execute("""
        CREATE TABLE a (id serial PRIMARY KEY); INSERT INTO a VALUES (10);
        CREATE TABLE b (id serial PRIMARY KEY); INSERT INTO b VALUES (20);
        CREATE TABLE fine (id serial PRIMARY KEY); INSERT INTO fine DEFAULT VALUES;
    """)
    log = tmp_path / "logs" / "audit.jsonl"
    run = run_seqtui("fix", "--yes", "--audit-log", str(log), url=db.url)
    assert run.code == 0, run.text
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["sequence"], e["before"], e["after"], e["result"]) for e in entries] == [
        ("public.a_id_seq", 1, 11, "fixed"), ("public.b_id_seq", 1, 21, "fixed")]
    for e in entries:
        assert e["database"] == db.name and e["server_user"] == "postgres" and e["source"] == "fix"
        assert e["os_user"] and e["time"].endswith("+00:00")
    assert PASSWORD not in log.read_text() and quote(PASSWORD, safe="") not in log.read_text()

    # a second run appends, never rewrites
    db.execute("INSERT INTO a VALUES (50)")
    run_seqtui("fix", "--yes", "--audit-log", str(log), url=db.url)
    assert len(log.read_text().splitlines()) == 3


def test_unwritable_audit_log_changes_nothing(db, tmp_path):
    db.execute("CREATE TABLE a (id serial PRIMARY KEY); INSERT INTO a VALUES (10)")
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = run_seqtui("fix", "--yes", "--audit-log", str(blocker / "audit.jsonl"), url=db.url)
    assert run.code == 3 and "audit log" in run.err and "nothing was changed" in run.err
    assert db.next_value("public.a_id_seq") == 1


def test_each_line_reaches_the_file_as_it_is_recorded_while_the_log_is_held_open(tmp_path):
    """Held open for a run of fixes, the log still hands every line to the kernel at once: a seqtui
    killed mid-run has lost none of the fixes it made."""
    from seqtui.apply import FixResult
    from seqtui.audit import AuditLog
    from seqtui.model import Sequence
    from seqtui.repair import FixPlan

    seq = Sequence(1, "public", "t_id_seq", "integer", 1, 1, 2**31 - 1, 1, 1, False, qualified_name="public.t_id_seq")
    log = AuditLog(tmp_path / "audit.jsonl", {"name": "db", "host": "h", "port": 5432, "user": "u"}, "fix").open()
    with log:
        for n in (1, 2):
            log.record(FixResult(FixPlan(seq, ()), "fixed", n, n + 10))
            written = (tmp_path / "audit.jsonl").read_text().splitlines()
            assert [json.loads(line)["before"] for line in written] == list(range(1, n + 1))
    log.record(FixResult(FixPlan(seq, ()), "unchanged", 3, 3))  # outside a run: opened for its line
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 3
