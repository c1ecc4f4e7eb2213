"""The batched reads of catalog.py against a real server: both ways of reading sequence state agree,
and what cannot be read is said per sequence, not by failing the scan."""

from __future__ import annotations

import threading
from dataclasses import replace

import psycopg
import pytest

from seqtui import catalog
from seqtui import states as state_reads
from seqtui.connect import connect, resolve

SHAPES = """
    CREATE SEQUENCE fresh;                                   -- never called: next is START
    CREATE SEQUENCE called; SELECT nextval('called'), nextval('called');
    CREATE SEQUENCE set_false; SELECT setval('set_false', 40, false);
    CREATE SEQUENCE down INCREMENT -3 MAXVALUE -1 START -1; SELECT nextval('down'), nextval('down');
    CREATE SEQUENCE "Odd ""name"".x" START 7; SELECT nextval('"Odd ""name"".x"');
"""


@pytest.fixture
def conn(db):
    db.execute(SHAPES)
    with connect(resolve(db.url)) as conn:
        yield conn


def sequences(conn) -> list:
    return [seq for seq, _ in catalog.discover(conn)]


@pytest.mark.since_server(catalog.SEQUENCE_DATA_FUNCTION_SINCE // 10000)  # pg_get_sequence_data()
def test_function_and_relation_reads_agree(conn, db):
    seqs = sequences(conn)
    assert all(s.data_function for s in seqs)
    by_function = catalog.read_states(conn, seqs)
    # the path older servers take
    by_relation = catalog.read_states(conn, [replace(s, data_function=False) for s in seqs])
    assert by_function == by_relation
    got = {s.name: (st.last_value, st.is_called) for s, st in zip(seqs, by_function)}
    assert got == {"fresh": (1, False), "called": (2, True), "set_false": (40, False), "down": (-4, True),
                   'Odd "name".x': (7, True)}


def test_before_18_the_called_sequences_are_read_by_one_call_and_the_others_from_the_relation(conn, db):
    """pg_sequence_last_value() knows a called sequence's state; it is NULL for one never called (or set
    with is_called false), whose last_value only the relation holds."""
    seqs = [replace(s, data_function=False) for s in sequences(conn)]
    by_call = state_reads._read_states_by_call(conn, seqs, list(range(len(seqs))), None, data_function=False)
    assert {seqs[i].name: (st.last_value, st.is_called) for i, st in by_call.items()} == {
        "called": (2, True), "down": (-4, True), 'Odd "name".x': (7, True)}
    states = catalog.read_states(conn, seqs)
    assert {s.name: (st.last_value, st.is_called) for s, st in zip(seqs, states)} == {
        "fresh": (1, False), "called": (2, True), "set_false": (40, False), "down": (-4, True),
        'Odd "name".x': (7, True)}


def test_more_sequences_than_one_chunk(conn, db, monkeypatch):
    monkeypatch.setattr(state_reads, "STATE_FUNCTION_CHUNK", 2)
    db.execute("SELECT setval('fresh', 99)")
    states = catalog.read_states(conn, seqs := sequences(conn))
    assert {s.name: st.last_value for s, st in zip(seqs, states)}["fresh"] == 99
    assert all(isinstance(st, catalog.SequenceState) for st in states)


def test_sequence_dropped_after_discovery_is_said_per_row(conn, db):
    seqs = sequences(conn)
    db.execute("DROP SEQUENCE called")
    states = dict(zip([s.name for s in seqs], catalog.read_states(conn, seqs)))
    assert isinstance(states["called"], str) and "does not exist" in states["called"]
    assert states["set_false"] == catalog.SequenceState(40, False)


def test_sequence_locked_by_another_session_times_out_alone(conn, db):
    discovered = catalog.discover(conn)
    holder = psycopg.connect(db.url)
    # if the read were not bounded it would wait for the holder: let go after a while, so that such a
    # regression fails the assertions below instead of hanging the suite
    release = threading.Timer(20, holder.close)
    try:
        holder.execute("DROP SEQUENCE set_false")  # uncommitted: holds ACCESS EXCLUSIVE on it
        release.start()
        observations = catalog.observe(conn, discovered, statement_timeout_ms=300)
    finally:
        release.cancel()
        holder.close()
    by_name = {o.sequence.name: o for o in observations}
    assert by_name["set_false"].state is None
    assert "statement timeout" in by_name["set_false"].state_detail
    assert by_name["called"].state == catalog.SequenceState(2, True)
    # the session's own statement_timeout is back as it was
    assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"


def test_reads_inside_a_transaction_leave_it_open(conn, db, monkeypatch):
    """The pipelined reads commit chunk by chunk: on a connection already in a transaction they must
    not, or the caller's transaction would end under it."""
    db.execute(f"DO $$ BEGIN FOR i IN 1..{catalog.CHUNK} LOOP EXECUTE format('CREATE SEQUENCE many_%s', i); "
               "END LOOP; END $$")  # more than a chunk, so that the pipeline would be used
    monkeypatch.setattr(catalog, "SEQUENCE_DATA_FUNCTION_SINCE", 10**9)  # states from the relations, chunked
    seqs = sequences(conn)
    expected = catalog.read_states(conn, seqs)
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE marker (x int)")
    assert catalog.read_states(conn, seqs) == expected
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT to_regclass('pg_temp.marker')").fetchone() == (None,)
